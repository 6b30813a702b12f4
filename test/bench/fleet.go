package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

const (
	fleetNamespaces   = 10
	fleetPerNamespace = 20 // 200 keyrings
)

// fleet times `rotate-key status --all-namespaces` (the fleet view an operator runs across a cluster) over 200
// keyrings seeded as TestStatusAllNamespaces seeds them: 10 namespaces of 20, half found by the library's label,
// half by rotate-key's state annotations alone, plus one unrelated Secret per namespace. A whole process, table
// output, as an operator runs it; one more run with -o json checks that it found all 200.
func fleet(ctx context.Context, env *clusterEnv, r *report) error {
	// client-go's default rate limit (5 requests/s) would make seeding 210 Secrets take most of a minute.
	fast := rest.CopyConfig(env.cluster.Config)
	fast.QPS, fast.Burst = 500, 1000
	client, err := kubernetes.NewForConfig(fast)
	if err != nil {
		return err
	}
	mine := map[string]bool{}
	due := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	for n := 0; n < fleetNamespaces; n++ {
		ns, err := env.namespace(ctx, "fleet")
		if err != nil {
			return err
		}
		mine[ns] = true
		for i := 0; i < fleetPerNamespace; i++ {
			key, err := randomKey()
			if err != nil {
				return err
			}
			if _, err := client.CoreV1().Secrets(ns).Create(ctx, testcluster.FleetKeyring(i, key, due), metav1.CreateOptions{}); err != nil {
				return err
			}
		}
		decoy := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Annotations: map[string]string{"other.example.com/x": "y"}}, StringData: map[string]string{"password": "x"}}
		if _, err := client.CoreV1().Secrets(ns).Create(ctx, decoy, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	total := fleetNamespaces * fleetPerNamespace
	st, err := env.repeat(ctx, env.fleetRuns, proc{name: env.binary, args: []string{"status", "--all-namespaces"}, env: env.kubeEnv()})
	if err != nil {
		return err
	}
	js, err := env.measure(ctx, proc{name: env.binary, args: []string{"status", "--all-namespaces", "-o", "json"}, env: env.kubeEnv()})
	if err != nil {
		return err
	}
	var entries []struct {
		Namespace, Secret, Error string
	}
	if err := json.Unmarshal(js.out, &entries); err != nil {
		return fmt.Errorf("status -A -o json: %w", err)
	}
	found, errs := 0, 0
	for _, e := range entries {
		if mine[e.Namespace] && e.Secret != "unrelated" {
			found++
			if e.Error != "" {
				errs++
			}
		}
	}
	s := r.section(fmt.Sprintf("`status --all-namespaces` over %d keyrings", total))
	s.para("%d namespaces of %d keyring Secrets each (half labelled by the library, half found by rotate-key's state annotations alone) and one unrelated Secret per namespace, created through the API as TestStatusAllNamespaces does; the cluster also holds the keyrings of the other sections. Median of %d runs of the whole process.",
		fleetNamespaces, fleetPerNamespace, env.fleetRuns)
	s.command("time KUBECONFIG=$KUBECONFIG bin/rotate-key status --all-namespaces > /dev/null")
	s.table("keyrings seeded", "keyrings listed (whole cluster)", "median", "peak RSS")
	s.row(fmt.Sprint(total), fmt.Sprint(len(entries)), dur(st.median), mb(st.maxRSS))
	r.must(found == total && errs == 0, "status --all-namespaces listed all %d seeded keyrings without an error (found %d, %d with an error)", total, found, errs)
	r.target(fmt.Sprintf("`status --all-namespaces` over %d keyrings < 5 s", total), dur(st.median), st.median < 5*time.Second)
	return nil
}

// randomKey returns 64 random alphanumeric characters: a key as rotate-key generates one (kept in the cluster only).
func randomKey() ([]byte, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 64)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return b, nil
}
