package action

import (
	"strings"
	"testing"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// (moved from internal/cli/hookpath_test.go)
func TestPlanHookUpgrade(t *testing.T) {
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	k := &keyring.Keyring{Active: 3, Keys: map[int][]byte{3: []byte("x")}}
	id := func(time.Time) string { return "r9" }
	tests := []struct {
		name    string
		st      rotation.State
		start   bool
		ok      bool
		request string
		desc    string
	}{
		{"idle, never rotated", rotation.State{Phase: rotation.Idle}, true, true, "r9", "rotation r9: add v4, roll out, promote, roll out (hook Jobs)"},
		{"idle, retire only", rotation.State{Phase: rotation.Idle}, false, false, "", ""},
		{"not due", rotation.State{Phase: rotation.Idle, NextRotationDue: now.Add(time.Hour)}, true, false, "", ""},
		{"stopped half-way", rotation.State{Phase: rotation.KeyAdded, RotationID: "r1", From: 3, To: 4}, true, true, "", "rotation r1: resume at KeyAdded (hook Jobs)"},
		{"ttl running", rotation.State{Phase: rotation.Waiting, RotationID: "r1", From: 2, To: 3, RetireAfter: now.Add(time.Minute)}, true, false, "", ""},
		{"ttl passed", rotation.State{Phase: rotation.Waiting, RotationID: "r1", From: 2, To: 3, RetireAfter: now.Add(-time.Minute)}, false, true, "", "rotation r1: retire v2, token TTL passed (hook Jobs)"},
	}
	for _, tt := range tests {
		u, ok := planHookUpgrade(tt.st, k, now, tt.start, false, id)
		if ok != tt.ok || u.Request != tt.request || !strings.HasSuffix(u.Description, tt.desc) {
			t.Errorf("%s: got ok=%v request=%q description=%q", tt.name, ok, u.Request, u.Description)
		}
	}
}
