package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

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
		{"idle, never rotated", rotation.State{Phase: rotation.Idle}, true, true, "r9", "rotation r9: add v4, roll out, promote"},
		{"idle, retire only", rotation.State{Phase: rotation.Idle}, false, false, "", ""},
		{"not due", rotation.State{Phase: rotation.Idle, NextRotationDue: now.Add(time.Hour)}, true, false, "", ""},
		{"stopped half-way", rotation.State{Phase: rotation.KeyAdded, RotationID: "r1", From: 3, To: 4}, true, true, "", "rotation r1: resume at KeyAdded"},
		{"ttl running", rotation.State{Phase: rotation.Waiting, RotationID: "r1", From: 2, To: 3, RetireAfter: now.Add(time.Minute)}, true, false, "", ""},
		{"ttl passed", rotation.State{Phase: rotation.Waiting, RotationID: "r1", From: 2, To: 3, RetireAfter: now.Add(-time.Minute)}, false, true, "", "rotation r1: retire v2, token TTL passed"},
	}
	for _, tt := range tests {
		u, ok := planHookUpgrade(tt.st, k, now, tt.start, false, id)
		if ok != tt.ok || u.Request != tt.request || !strings.Contains(u.Description, tt.desc) {
			t.Errorf("%s: got ok=%v request=%q description=%q", tt.name, ok, u.Request, u.Description)
		}
	}
}

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"helm", "upgrade", "--description", "rotate-key: it's v2", "--set", "a=b"})
	want := `helm upgrade --description 'rotate-key: it'\''s v2' --set a=b`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestUpgradeArguments(t *testing.T) {
	settings := helmenv.FromEnv(func(string) string { return "" })
	o := &UpgradeOptions{settings: &settings}
	if err := o.Complete([]string{"app", "./chart", "-n", "team", "--set", "a=b", "-f", "v.yaml", "--kube-context=prod", "--reuse-values"}); err != nil {
		t.Fatal(err)
	}
	if o.Release != "app" || o.Chart != "./chart" || o.namespace != "team" || settings.KubeContext != "prod" ||
		strings.Join(o.HelmArgs, " ") != "--set a=b -f v.yaml --reuse-values" {
		t.Fatalf("got release %q chart %q ns %q context %q helm args %q", o.Release, o.Chart, o.namespace, settings.KubeContext, o.HelmArgs)
	}
	for _, args := range [][]string{{"-f", "v.yaml", "app", "./chart"}, {"app"}, {"app", "./chart", "--post-renderer", "x"}, {"app", "./chart", "-n"}} {
		if err := (&UpgradeOptions{settings: &settings}).Complete(args); err == nil {
			t.Errorf("%q: want a usage error", args)
		}
	}
}
