package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// TestTrafficResumedRollout: the documented recovery of a rollout that timed out — rerun the same command — under
// traffic (the ninth attack on the instrument: no traffic run resumed a rollout, and an engine that took a rollout
// restarted by an earlier run for done promoted past old verifiers with every other test green; with this test it
// rejected 2,434 live tokens). Env signers and verifiers, the verifiers 25 s from ready to available: the first run
// stops in the first rollout, the rerun must wait for it before it promotes.
func TestTrafficResumedRollout(t *testing.T) {
	ctx := context.Background()
	app := testcluster.TokenApp{SignerKeys: "env", VerifierKeys: "env", VerifierMinReady: 25 * time.Second}
	h, ns, run := trafficSubtest(t, 360*time.Second, 4, "resume", app, false)
	out, err := h.Run(ctx, "-n", ns, "rotate-key", "app", "--local", "--yes", "--timeout", "8s")
	if err == nil || exitCode(err) == 3 {
		t.Fatalf("the first run must stop in the first rollout: %v\n%s", err, out)
	}
	if _, _, st := secretState(t, ns); st.Phase != rotation.KeyAdded {
		t.Fatalf("phase %s after the timed-out run, want KeyAdded\n%s", st.Phase, out)
	}
	if out, err = h.Run(ctx, "-n", ns, "rotate-key", "app", "--local", "--yes"); exitCode(err) != 3 {
		t.Fatalf("the rerun must carry the rotation to the TTL wait: %v\n%s", err, out)
	}
	_, _, st := secretState(t, ns)
	time.Sleep(time.Until(st.RetireAfter) + time.Second)
	if out, err := h.Run(ctx, "-n", ns, "rotate-key", "app", "--local", "--yes"); err != nil {
		t.Fatalf("finish: %v\n%s", err, out)
	}
	assertNoTokenRejected(t, "a rollout resumed after a timeout", run.Stop(), "v1", "v2")
}
