package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestRefusedRollbackIsCleared: a plain `helm rollback` across a rotation is refused by the library's pre-rollback
// guard hook and leaves the release pending-rollback; `helm rotate-key rollback` clears that and rolls back with
// the keyring kept — also when the deployed revision's own render is stale (its hook Jobs rotated the keyring after
// it was rendered), which made its guard hook refuse the clearing rollback (the tenth cold read of the runbook).
func TestRefusedRollbackIsCleared(t *testing.T) {
	t.Parallel()
	for _, major := range helmMajors() {
		t.Run(fmt.Sprintf("helm%d", major), func(t *testing.T) {
			t.Parallel()
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
			if out, err := h.Run(ctx, "-n", ns, "rollback", "app", "1"); err == nil {
				t.Fatalf("a plain rollback across the rotation must be refused:\n%s", out)
			}
			if status := releaseStatus(t, h, ns); status != "pending-rollback" {
				t.Fatalf("after the refused rollback the release is %s, want pending-rollback", status)
			}
			out, err := h.Run(ctx, "-n", ns, "rotate-key", "rollback", "app", "1")
			if err != nil || !strings.Contains(out, "clearing it with a rollback to the deployed revision 2") {
				t.Fatalf("rotate-key rollback must clear the pending rollback and roll back: %v\n%s", err, out)
			}
			keys, active, _ := secretState(t, ns)
			if fmt.Sprint(keys) != "[key.v1 key.v2]" || active != "v2" || releaseStatus(t, h, ns) != "deployed" {
				t.Fatalf("after rotate-key rollback: keys %v active %s status %s", keys, active, releaseStatus(t, h, ns))
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
