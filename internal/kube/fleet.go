package kube

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
)

// FleetConcurrency bounds the parallel reads of the fleet view: enough to hide the round trips, few enough not to
// burst an API server's per-client limits.
const FleetConcurrency = 8

// KeyringSecret is a keyring found in the fleet: its metadata, and its data read with one GET.
type KeyringSecret struct {
	Namespace, Name, Release string
	Annotations              map[string]string
	Data                     map[string][]byte
	Err                      error
}

// Fleet is every keyring of the cluster and the API server's time when they were read (what "overdue" is judged
// by, as everywhere else: the operator's clock may be off).
type Fleet struct {
	Keyrings []KeyringSecret
	Now      time.Time
}

// IsKeyring tells a keyring Secret by its metadata alone: the rotate-key library's label, or any rotate-key
// annotation (a Secret rotated once carries the state annotations, whatever chart rendered it).
func IsKeyring(m metav1.ObjectMeta, prefix string) bool {
	if m.Labels["app.kubernetes.io/component"] == "rotate-key" {
		return true
	}
	for k := range m.Annotations {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// FindKeyrings lists every Secret's metadata in all namespaces (no data crosses the wire: a metadata-only list),
// keeps the keyrings, and reads each of them with at most FleetConcurrency requests in flight.
func FindKeyrings(ctx context.Context, cfg *rest.Config, prefix string) (Fleet, error) {
	// client-go's default client-side limit (5 requests/s) would make 200 keyrings take 40 s; the concurrency bound
	// above is what limits the load.
	clock := &serverClock{}
	cfg = withServerClock(cfg, clock)
	cfg.QPS, cfg.Burst = 100, 2*FleetConcurrency
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		return Fleet{}, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Fleet{}, err
	}
	var found []KeyringSecret
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := meta.Resource(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}).List(ctx, opts)
		if err != nil {
			return Fleet{}, fmt.Errorf("listing Secrets in all namespaces (metadata only): %w", err)
		}
		for _, item := range list.Items {
			if !IsKeyring(item.ObjectMeta, prefix) {
				continue
			}
			release := item.Labels["app.kubernetes.io/instance"]
			if r := item.Annotations["meta.helm.sh/release-name"]; r != "" {
				release = r
			}
			found = append(found, KeyringSecret{Namespace: item.Namespace, Name: item.Name, Release: release, Annotations: item.Annotations})
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			break
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, FleetConcurrency)
	for i := range found {
		wg.Add(1)
		sem <- struct{}{}
		go func(k *KeyringSecret) {
			defer func() { <-sem; wg.Done() }()
			var s *corev1.Secret
			if s, k.Err = client.CoreV1().Secrets(k.Namespace).Get(ctx, k.Name, metav1.GetOptions{}); k.Err == nil {
				k.Data, k.Annotations = s.Data, s.Annotations
			}
		}(&found[i])
	}
	wg.Wait()
	now, ok := clock.now()
	if !ok {
		return Fleet{}, fmt.Errorf("the API server sent no Date header: cannot follow its clock")
	}
	return Fleet{Keyrings: found, Now: now}, nil
}
