package traffic

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

// The settle ends only when every endpoint that re-reads its keys shows the keyring as the Secret has it now: a
// verifier whose files still hold the retired version keeps the traffic going, one that reads env does not.
func TestSettleWaitsForEveryReReadingEndpoint(t *testing.T) {
	var mu sync.Mutex
	metrics := map[string]string{"signer": "keys env\nkids v1\nactive v1\n", "verifier": "keys dir\nkids v1,v2\nactive v2\n"}
	serve := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			_, _ = w.Write([]byte(metrics[name]))
		}))
	}
	signer, verifier := serve("signer"), serve("verifier")
	defer signer.Close()
	defer verifier.Close()
	client := fake.NewClientset(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "keys"},
		Data: map[string][]byte{"active": []byte("v2"), "key.v2": []byte("x"), "other": []byte("y")}})
	r := &Run{d: Driver{Client: client, Namespace: "ns", Signer: "s", Verifier: "v", Keyring: "keys"}, client: http.DefaultClient,
		endpoints: newEndpointSet(func(ip string) string { return ip })}
	for name, srv := range map[string]*httptest.Server{"s": signer, "v": verifier} {
		host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
		p, _ := strconv.Atoi(port)
		r.endpoints.update(&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			Ports:     []discoveryv1.EndpointPort{{Port: ptr.To(int32(p))}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}}}, false)
	}
	if r.converged() {
		t.Fatal("a verifier whose files still hold v1 (retired) is not converged")
	}
	mu.Lock()
	metrics["verifier"] = "keys dir\nkids v2\nactive v2\n"
	mu.Unlock()
	if !r.converged() {
		t.Fatal("every re-reading endpoint shows the keyring (the env signer keeps what it read at start): converged")
	}
	verifier.Close()
	if r.converged() {
		t.Fatal("an endpoint that does not answer is not converged")
	}
}
