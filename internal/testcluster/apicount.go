package testcluster

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
)

// APIRequest is one request that went through an APICounter.
type APIRequest struct {
	Method string
	// Path is the URL path, Query its raw query (watch=true, labelSelector=...).
	Path, Query string
	// UserAgent tells the clients apart (rotate-key, kubectl, helm).
	UserAgent string
	// Verb is the Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection, or
	// "discovery" for /api, /apis, /version and /openapi reads.
	Verb string
	// Group, Resource, Subresource and Name locate the object ("" group: core).
	Group, Resource, Subresource, Name string
}

// String is the request as the budget tables show it: "GET secrets/app-keys", "LIST pods".
func (r APIRequest) String() string {
	s := strings.ToUpper(r.Verb) + " " + r.Resource
	if r.Subresource != "" {
		s += "/" + r.Subresource
	}
	if r.Name != "" {
		s += " " + r.Name
	}
	return s
}

// APICounter is the counting transport of the API budgets (docs/benchmarks.md): a reverse proxy in front of the
// cluster's API server that records every request. Clients reach it through Kubeconfig — plain HTTP on
// 127.0.0.1 with no credentials; the proxy presents the cluster-admin's — so any process can be counted, not only
// this one: rotate-key, kubectl and Helm alike.
type APICounter struct {
	// Kubeconfig points at the proxy.
	Kubeconfig string

	srv  *http.Server
	mu   sync.Mutex
	reqs []APIRequest
}

// StartAPICounter starts a counting proxy in front of the cluster and writes its kubeconfig into dir.
func (c *Cluster) StartAPICounter(dir string) (*APICounter, error) {
	upstream, err := url.Parse(c.Config.Host)
	if err != nil {
		return nil, err
	}
	transport, err := rest.TransportFor(c.Config)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &APICounter{Kubeconfig: filepath.Join(dir, "counted.kubeconfig")}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(upstream)
			r.Out.Host = upstream.Host
		},
		Transport:     transport,
		FlushInterval: -1, // watches stream
	}
	a.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.reqs = append(a.reqs, Classify(r.Method, r.URL.Path, r.URL.RawQuery, r.UserAgent()))
		a.mu.Unlock()
		proxy.ServeHTTP(w, r)
	})}
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: counted, cluster: {server: "http://%s"}}]
users: [{name: counted, user: {}}]
contexts: [{name: counted, context: {cluster: counted, user: counted, namespace: default}}]
current-context: counted
`, l.Addr())
	if err := os.WriteFile(a.Kubeconfig, []byte(kubeconfig), 0o600); err != nil {
		l.Close()
		return nil, err
	}
	go func() { _ = a.srv.Serve(l) }()
	return a, nil
}

// Take returns the requests counted since the last Take and starts a new count.
func (a *APICounter) Take() []APIRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.reqs
	a.reqs = nil
	return out
}

// Close stops the proxy.
func (a *APICounter) Close() { _ = a.srv.Close() }

// Classify turns a request line into an APIRequest, with the verb the API server's authorizer would see.
func Classify(method, path, query, userAgent string) APIRequest {
	r := APIRequest{Method: method, Path: path, Query: query, UserAgent: userAgent}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var rest []string
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		rest = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		r.Group, rest = parts[1], parts[3:]
	}
	if len(rest) >= 2 && rest[0] == "namespaces" && len(rest) != 2 {
		rest = rest[2:] // a namespaced resource; "namespaces/NAME" alone is the namespace itself
	}
	if len(rest) == 0 {
		r.Verb = "discovery"
		return r
	}
	r.Resource = rest[0]
	if len(rest) > 1 {
		r.Name = rest[1]
	}
	if len(rest) > 2 {
		r.Subresource = strings.Join(rest[2:], "/")
	}
	values, _ := url.ParseQuery(query)
	switch method {
	case http.MethodGet, http.MethodHead:
		switch {
		case values.Get("watch") == "true" || values.Get("watch") == "1":
			r.Verb = "watch"
		case r.Name == "":
			r.Verb = "list"
		default:
			r.Verb = "get"
		}
	case http.MethodPost:
		r.Verb = "create"
	case http.MethodPut:
		r.Verb = "update"
	case http.MethodPatch:
		r.Verb = "patch"
	case http.MethodDelete:
		r.Verb = "delete"
		if r.Name == "" {
			r.Verb = "deletecollection"
		}
	default:
		r.Verb = strings.ToLower(method)
	}
	return r
}
