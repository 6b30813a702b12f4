package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// TestConcurrentRunsOneProceeds starts 5 runs at once (through Helm 3 and Helm 4 alternately) while one consumer is held unavailable (minReadySeconds), so
// that they overlap: one run proceeds, the other four are refused with exit code 4 naming the lock holder, and the
// rotation ends correct once the consumer is released.
func TestConcurrentRunsOneProceeds(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "concurrent", nil)
	fixture(t, ns)
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := cluster.Client.AppsV1().Deployments(ns).Get(ctx, "verifier", metav1.GetOptions{})
		return err == nil && d.Status.AvailableReplicas == 2, err
	})
	if err != nil {
		t.Fatal(err)
	}
	holdVerifier(t, ns, 3600) // restarted verifier pods become Ready but not Available for an hour: the rollout waits

	type result struct {
		out  string
		code int
	}
	results := make([]result, 5)
	helms := []*testcluster.Helm{newHelm(t, 3), newHelm(t, 4)}
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := helms[i%2].Run(ctx, "-n", ns, "rotate-key", "run", "app", "--yes", "--timeout", "2m")
			results[i] = result{out, exitCode(err)}
		}()
	}
	// Release the consumer once four runs have been refused (or after 30 s, which fails the test below).
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		refused := 0
		for i := range results {
			if results[i].code == 4 {
				refused++
			}
		}
		if refused == 4 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	holdVerifier(t, ns, 0)
	wg.Wait()

	proceeded, refused := 0, 0
	for i, r := range results {
		switch {
		case r.code == 3 && strings.Contains(r.out, "Finish after"):
			proceeded++
		case r.code == 4 && strings.Contains(r.out, "another run holds the rotation lock: ") && strings.Contains(r.out, " pid "):
			refused++
		default:
			t.Errorf("run %d: exit %d\n%s", i, r.code, r.out)
		}
	}
	state, _ := endState(t, ns)
	if proceeded != 1 || refused != 4 || state != "Waiting keys=active,key.v1,key.v2 active=v2" {
		t.Fatalf("%d proceeded, %d refused, end state %q; want 1, 4 and Waiting with v1 and v2", proceeded, refused, state)
	}
	for _, r := range results {
		if r.code == 4 {
			t.Logf("refused run said: %s", strings.TrimSpace(r.out))
			break
		}
	}
}
