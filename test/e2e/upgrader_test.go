package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// TestInClusterUpgraderDoesNotWedge (issue 15.8): real charts ship an in-cluster upgrader — a CronJob that runs
// `helm upgrade --reset-then-reuse-values --atomic` on a schedule and `helm rollback` whenever the release is
// pending. Emulated here by a loop in the test (no image with a Helm CLI runs on the runner node), every 8 s
// instead of hourly, with a 15 s timeout and no history limit (with Helm's default of 10 its rollbacks would prune
// the rotation's in-flight revision record, a Helm behaviour no client can prevent and no hourly upgrader reaches),
// while the operator rotates through the hook path and reruns the plugin whenever it fails, as its errors say. The
// verifier takes 20 s to count as available, so the rotation's hook Jobs outlive the upgrader's timeouts, and its
// rollbacks, refused by the guard, stack pending-rollback revisions. The rotation must reach its TTL wait within a
// few reruns, the release must end deployed (no wedge), and no key byte may change.
func TestInClusterUpgraderDoesNotWedge(t *testing.T) {
	for _, major := range helmMajors() {
		t.Run(fmt.Sprintf("helm%d", major), func(t *testing.T) {
			parallel(t, 180*time.Second)
			ctx := context.Background()
			h := newHelm(t, major)
			ns := namespace(t, "upgrader", nil)
			if out, err := installExample(ctx, h, ns, "app", "--set", "tokenTtlSeconds=60", "--wait", "--timeout", "2m"); err != nil {
				t.Fatalf("install: %v\n%s", err, out)
			}
			slow := func(seconds int) { holdDeployment(t, ns, "app-requests-proxy", seconds) }
			slow(20)
			time.Sleep(25 * time.Second) // available again before anything waits for it
			before, err := cluster.Client.CoreV1().Secrets(ns).Get(ctx, "app-requests-proxy-admin", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var mu sync.Mutex
			outcomes := map[string]int{}
			wg.Add(1)
			go func() { // the upgrader
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					case <-time.After(8 * time.Second):
					}
					op := "upgrade"
					args := []string{"-n", ns, "upgrade", "app", exampleChart(), "--reset-then-reuse-values", "--atomic", "--timeout", "15s", "--history-max", "0"}
					if out, _ := h.Run(ctx, "-n", ns, "history", "app", "--max", "1"); strings.Contains(out, "pending-") {
						op, args = "rollback", []string{"-n", ns, "rollback", "app", "--timeout", "15s", "--history-max", "0"}
					}
					_, err := h.Run(ctx, args...)
					mu.Lock()
					outcomes[fmt.Sprintf("%s ok=%v", op, err == nil)]++
					mu.Unlock()
				}
			}()
			var reached bool
			var runs []string
			for attempt := 0; attempt < 10 && !reached; attempt++ {
				out, err := h.Run(ctx, "-n", ns, "rotate-key", "app", "--yes")
				runs = append(runs, fmt.Sprintf("exit %d", exitCode(err)))
				if _, _, st := secretState(t, ns); exitCode(err) == 3 && st.Phase == rotation.Waiting {
					reached = true
					break
				}
				t.Logf("rerun %d: exit %d\n%s", attempt+1, exitCode(err), lastLines(out, 4))
				time.Sleep(3 * time.Second)
			}
			close(stop)
			wg.Wait()
			mu.Lock()
			t.Logf("helm%d: plugin runs %v; the upgrader's operations meanwhile: %v", major, runs, outcomes)
			mu.Unlock()
			if !reached {
				t.Fatalf("the rotation did not reach its TTL wait in %d runs beside the upgrader", len(runs))
			}
			slow(0)
			// The upgrader may have left a refused rollback after the last run: the next run clears it.
			if s := releaseStatus(t, h, ns); s != "deployed" {
				if out, err := h.Run(ctx, "-n", ns, "rotate-key", "app", "--yes"); exitCode(err) != 3 {
					t.Fatalf("release %s after the upgrader stopped; a rerun must clear it: %v\n%s", s, err, out)
				}
			}
			if s := releaseStatus(t, h, ns); s != "deployed" {
				t.Fatalf("release %s at the end: wedged", s)
			}
			if out, err := h.Run(ctx, "-n", ns, "upgrade", "app", exampleChart(), "--reset-then-reuse-values", "--atomic", "--timeout", "2m"); err != nil {
				t.Fatalf("the upgrader's next upgrade must pass: %v\n%s", err, out)
			}
			keys, active, st := secretState(t, ns)
			after, err := cluster.Client.CoreV1().Secrets(ns).Get(ctx, "app-requests-proxy-admin", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st.Phase != rotation.Waiting || fmt.Sprint(keys) != "[key.v1 key.v2]" || active != "v2" || dataDigest(map[string][]byte{"v1": before.Data["key.v1"]}) != dataDigest(map[string][]byte{"v1": after.Data["key.v1"]}) {
				t.Fatalf("at the end: phase %s keys %v active %s, v1 unchanged %v", st.Phase, keys, active, dataDigest(map[string][]byte{"v1": before.Data["key.v1"]}) == dataDigest(map[string][]byte{"v1": after.Data["key.v1"]}))
			}
		})
	}
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
