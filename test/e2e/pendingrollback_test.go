package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRefusedRollbackIsCleared: a plain `helm rollback` across a rotation is refused by the library's pre-rollback
// guard hook and leaves the release pending-rollback, and then every upgrade fails. `helm rotate-key rollback`
// clears that — also when the deployed revision's own render is stale (its hook Jobs rotated the keyring after it
// was rendered, so a rollback to it is refused by its own guard, and on Helm 4 conflicts on .data.active) — and
// rolls back with the keyring byte for byte as it was; the rotation then finishes through the hook path.
func TestRefusedRollbackIsCleared(t *testing.T) {
	t.Parallel()
	for _, major := range helmMajors() {
		t.Run(fmt.Sprintf("helm%d", major), func(t *testing.T) {
			parallel(t, 150*time.Second)
			ctx := context.Background()
			h := newHelm(t, major)
			ns := namespace(t, fmt.Sprintf("pending-rollback-h%d", major), nil)
			if out, err := installExample(ctx, h, ns, "app", "--set", "tokenTtlSeconds=60", "--wait", "--timeout", "2m"); err != nil {
				t.Fatalf("install: %v\n%s", err, out)
			}
			// The hook path: revision 2 renders v1 active, its hook Jobs then add and promote v2.
			if out, err := h.Run(ctx, "-n", ns, "rotate-key", "app", "--yes"); exitCode(err) != 3 {
				t.Fatalf("rotation: %v\n%s", err, out)
			}
			before := keyringDigest(t, ns)
			if out, err := h.Run(ctx, "-n", ns, "rollback", "app", "1"); err == nil {
				t.Fatalf("a plain rollback across the rotation must be refused:\n%s", out)
			}
			if status := releaseStatus(t, h, ns); status != "pending-rollback" {
				t.Fatalf("after the refused rollback the release is %s, want pending-rollback", status)
			}
			out, err := h.Run(ctx, "-n", ns, "rotate-key", "rollback", "app", "1")
			if err != nil || !strings.Contains(out, "its guard hook refused that helm rollback") {
				t.Fatalf("rotate-key rollback must clear the refused rollback and roll back: %v\n%s", err, out)
			}
			if after := keyringDigest(t, ns); after != before || releaseStatus(t, h, ns) != "deployed" {
				t.Fatalf("after rotate-key rollback: keyring %s (before %s), status %s", after, before, releaseStatus(t, h, ns))
			}
			// The rotation carries on through the hook path of the rolled-back release and retires v1 after the TTL.
			_, _, st := secretState(t, ns)
			time.Sleep(time.Until(st.RetireAfter) + time.Second)
			if out, err := h.Run(ctx, "-n", ns, "rotate-key", "app", "--yes"); err != nil {
				t.Fatalf("finishing the rotation after the rollback: %v\n%s", err, out)
			}
			if keys, active, st := secretState(t, ns); fmt.Sprint(keys) != "[key.v2]" || active != "v2" || st.Phase != "Idle" {
				t.Fatalf("after the finish: keys %v active %s phase %s", keys, active, st.Phase)
			}
		})
	}
}

// releaseStatus is the status of the release's latest revision (helm history).
func releaseStatus(t *testing.T, h interface {
	Run(context.Context, ...string) (string, error)
}, ns string) string {
	t.Helper()
	out, err := h.Run(context.Background(), "-n", ns, "history", "app", "-o", "json")
	if err != nil {
		t.Fatalf("history: %v\n%s", err, out)
	}
	var revs []struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &revs); err != nil || len(revs) == 0 {
		t.Fatalf("history: %v\n%s", err, out)
	}
	return revs[len(revs)-1].Status
}
