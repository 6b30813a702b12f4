// Package kube is the only package that talks to the Kubernetes API server. Everything above it works on values;
// here live the reads and writes, with the namespace and credentials Helm handed the plugin.
package kube

import (
	"context"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Cluster is a connection to one API server, scoped to one namespace.
type Cluster struct {
	Client    kubernetes.Interface
	Namespace string
	// Clock, when set, replaces the API server's clock: for in-process simulations only (no flag or variable
	// reaches it).
	Clock func() time.Time
	clock *serverClock
}

// Connect builds a Cluster from a client configuration. Every response's Date header feeds the cluster's clock.
func Connect(cfg *rest.Config, namespace string) (*Cluster, error) {
	clock := &serverClock{}
	client, err := kubernetes.NewForConfig(withServerClock(cfg, clock))
	if err != nil {
		return nil, fmt.Errorf("building the Kubernetes client: %w", err)
	}
	return &Cluster{Client: client, Namespace: namespace, clock: clock}, nil
}

// Now is the API server's time: from the latest response's Date header, asking the server once if none was seen.
func (c *Cluster) Now(ctx context.Context) (time.Time, error) {
	if c.Clock != nil {
		return c.Clock(), nil
	}
	if t, ok := c.clock.now(); ok {
		return t, nil
	}
	if _, err := c.Client.Discovery().ServerVersion(); err != nil {
		return time.Time{}, fmt.Errorf("reading the API server's clock: %w", err)
	}
	if t, ok := c.clock.now(); ok {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("the API server sent no Date header: cannot follow its clock")
}

// Secret reads one Secret by name: a GET, never a LIST, so a ServiceAccount allowed only that one name suffices.
func (c *Cluster) Secret(ctx context.Context, name string) (*corev1.Secret, error) {
	s, err := c.Client.CoreV1().Secrets(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", c.Namespace, name, err)
	}
	return s, nil
}

// ReleaseRecord returns the `release` field of the newest stored revision of a Helm release, from the storage
// driver Helm is configured with ($HELM_DRIVER: "secret" by default, or "configmap"). It lists by Helm's labels
// in this namespace only.
func (c *Cluster) ReleaseRecord(ctx context.Context, driver, release string) ([]byte, error) {
	return c.ReleaseRevision(ctx, driver, release, 0)
}

// ReleaseRevision reads the storage record of one revision of a release (0: the newest).
func (c *Cluster) ReleaseRevision(ctx context.Context, driver, release string, revision int) ([]byte, error) {
	records, err := c.releaseRecords(ctx, driver, release, "")
	if err != nil {
		return nil, err
	}
	newest := -1
	var data []byte
	for _, r := range records {
		if revision > 0 && r.version == revision {
			return r.data, nil
		}
		if r.version > newest {
			newest, data = r.version, r.data
		}
	}
	if newest < 0 {
		return nil, fmt.Errorf("release %q not found in namespace %q: check the name and namespace with `helm list -n %s`", release, c.Namespace, c.Namespace)
	}
	if revision > 0 {
		return nil, fmt.Errorf("release %q has no revision %d in namespace %q (helm history %s -n %s lists them)", release, revision, c.Namespace, release, c.Namespace)
	}
	return data, nil
}

// DeployedRevision reads the storage record of the release's deployed revision (Helm labels it status=deployed);
// nil when there is none: a first install, or a release whose every revision failed.
func (c *Cluster) DeployedRevision(ctx context.Context, driver, release string) ([]byte, error) {
	records, err := c.releaseRecords(ctx, driver, release, ",status=deployed")
	if err != nil || len(records) == 0 {
		return nil, err
	}
	newest := records[0]
	for _, r := range records[1:] {
		if r.version > newest.version {
			newest = r
		}
	}
	return newest.data, nil
}

type releaseRecord struct {
	version int
	data    []byte
}

// releaseRecords lists the release's storage records (more: further label requirements, e.g. ",status=deployed"),
// with the Helm driver in use.
func (c *Cluster) releaseRecords(ctx context.Context, driver, release, more string) ([]releaseRecord, error) {
	opts := metav1.ListOptions{LabelSelector: "owner=helm,name=" + release + more}
	var records []releaseRecord
	switch driver {
	case "", "secret", "secrets":
		list, err := c.Client.CoreV1().Secrets(c.Namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("reading the records of release %q in namespace %q: %w", release, c.Namespace, err)
		}
		for _, s := range list.Items {
			v, _ := strconv.Atoi(s.Labels["version"])
			records = append(records, releaseRecord{v, s.Data["release"]})
		}
	case "configmap", "configmaps":
		list, err := c.Client.CoreV1().ConfigMaps(c.Namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("reading the records of release %q in namespace %q: %w", release, c.Namespace, err)
		}
		for _, cm := range list.Items {
			v, _ := strconv.Atoi(cm.Labels["version"])
			records = append(records, releaseRecord{v, []byte(cm.Data["release"])})
		}
	default:
		return nil, fmt.Errorf("HELM_DRIVER=%q is not supported: rotate-key reads releases stored by the \"secret\" or \"configmap\" driver", driver)
	}
	return records, nil
}
