package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// TestStatusAllNamespaces: the fleet view finds 200 keyrings in 10 namespaces — 100 by the library's label, 100
// by rotate-key state annotations alone — and none of the decoy Secrets, with each keyring's phase, active version
// and due date. (Its speed is measured by make bench, not asserted here.)
func TestStatusAllNamespaces(t *testing.T) {
	ctx := context.Background()
	key, err := keyring.Encoding{Kind: keyring.Alphanumeric, Length: 64}.Generate(randReader{})
	if err != nil {
		t.Fatal(err)
	}
	due := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	mine := map[string]bool{}
	for n := 0; n < 10; n++ {
		ns := namespace(t, "fleet", nil)
		mine[ns] = true
		for i := 0; i < 20; i++ {
			if _, err := cluster.Client.CoreV1().Secrets(ns).Create(ctx, testcluster.FleetKeyring(i, key, due), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		decoy := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Annotations: map[string]string{"other.example.com/x": "y"}}, StringData: map[string]string{"password": "x"}}
		if _, err := cluster.Client.CoreV1().Secrets(ns).Create(ctx, decoy, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	began := time.Now()
	out, err := exec.Command(cluster.Binary, "--kubeconfig", cluster.Kubeconfig, "status", "--all-namespaces", "-o", "json").Output()
	took := time.Since(began)
	if err != nil {
		t.Fatalf("status -A: %v\n%s", err, out)
	}
	var entries []struct {
		Namespace, Release, Secret, Phase, Active string
		NextRotationDue                           *time.Time
		Error                                     string
	}
	if err := json.Unmarshal(out, &entries); err != nil {
		t.Fatal(err)
	}
	count, withDue := 0, 0
	for _, e := range entries {
		if !mine[e.Namespace] {
			continue
		}
		count++
		if e.Secret == "unrelated" || e.Active != "v2" || e.Phase != "Idle" || e.Error != "" || e.Release == "" {
			t.Errorf("entry %+v", e)
		}
		if e.NextRotationDue != nil && e.NextRotationDue.Equal(due) {
			withDue++
		}
	}
	if count != 200 || withDue != 100 {
		t.Fatalf("status -A found %d of 200 keyrings (%d with the next due date, want 100)", count, withDue)
	}
	t.Logf("status -A: %d keyrings in this test's 10 namespaces (%d in the cluster) listed in %s", count, len(entries), took.Round(time.Millisecond))
}
