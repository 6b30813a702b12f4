package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/action"
	"github.com/tracebloc/helm-rotate-key/internal/action/actiontest"
	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/guard"
)

// Validate is pure: each command's flag combinations are judged without a cluster or a Helm, and every refusal
// is a usage error (exit 2) that names the flag.
func TestRotateValidate(t *testing.T) {
	type flags struct {
		mode                  action.Mode
		ttl, interval, reason string
		consumers             []string
		force, emergency      bool
		chart                 string
		timeout               time.Duration
	}
	tests := []struct {
		name string
		f    flags
		want string // "" = valid; else a substring of the error
	}{
		{"defaults", flags{mode: action.ModeRun, timeout: time.Minute}, ""},
		{"ttl in days", flags{mode: action.ModeRun, ttl: "90d", timeout: time.Minute}, ""},
		{"ttl in seconds", flags{mode: action.ModeRun, ttl: "3600", timeout: time.Minute}, ""},
		{"ttl zero", flags{mode: action.ModeRun, ttl: "0", timeout: time.Minute}, "--ttl"},
		{"ttl below the floor", flags{mode: action.ModeRun, ttl: "59s", timeout: time.Minute}, "--ttl"},
		{"ttl above the ceiling", flags{mode: action.ModeRun, ttl: "87601h", timeout: time.Minute}, "--ttl"},
		{"ttl not a duration", flags{mode: action.ModeRun, ttl: "soon", timeout: time.Minute}, "--ttl"},
		{"interval", flags{mode: action.ModeRun, interval: "30d", timeout: time.Minute}, ""},
		{"interval too short", flags{mode: action.ModeRun, interval: "30m", timeout: time.Minute}, "--interval"},
		{"consumers", flags{mode: action.ModeRun, consumers: []string{"Deployment/a", "StatefulSet/b"}, timeout: time.Minute}, ""},
		{"consumer kind", flags{mode: action.ModeRun, consumers: []string{"CronJob/a"}, timeout: time.Minute}, "--consumer"},
		{"force without reason", flags{mode: action.ModeRun, force: true, timeout: time.Minute}, "--force needs --reason"},
		{"force with blank reason", flags{mode: action.ModeRun, force: true, reason: "  ", timeout: time.Minute}, "--force needs --reason"},
		{"force with reason", flags{mode: action.ModeRun, force: true, reason: "audit", timeout: time.Minute}, ""},
		{"emergency", flags{mode: action.ModeRun, emergency: true, reason: "INC-1", timeout: time.Minute}, ""},
		{"emergency without reason", flags{mode: action.ModeRun, emergency: true, timeout: time.Minute}, "--emergency"},
		{"emergency on retire", flags{mode: action.ModeRetire, emergency: true, reason: "INC-1", timeout: time.Minute}, "--emergency"},
		{"emergency with a chart", flags{mode: action.ModeRun, emergency: true, reason: "INC-1", chart: "./c", timeout: time.Minute}, "--emergency"},
		{"no timeout", flags{mode: action.ModeRun}, "--timeout"},
	}
	for _, tt := range tests {
		o := newRotateCommand(actiontest.New().Config("", actiontest.Env(nil)), tt.f.mode)
		o.ttl, o.interval, o.reason, o.consumers, o.force = tt.f.ttl, tt.f.interval, tt.f.reason, tt.f.consumers, tt.f.force
		o.a.Emergency, o.a.Chart, o.a.Timeout = tt.f.emergency, tt.f.chart, tt.f.timeout
		err := o.validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || exitcode.Of(err) != exitcode.Usage):
			t.Errorf("%s: got %v (exit %d), want a usage error naming %s", tt.name, err, exitcode.Of(err), tt.want)
		}
	}
	o := newRotateCommand(actiontest.New().Config("", actiontest.Env(nil)), action.ModeRun)
	o.ttl, o.reason, o.a.Timeout, o.force = "2h", " why ", time.Minute, true
	if err := o.validate(); err != nil || o.a.Overrides.TTL != 2*time.Hour || o.a.Overrides.Reason != "why" || !o.a.Overrides.Force {
		t.Fatalf("overrides not filled: %v %+v", err, o.a.Overrides)
	}
}

func TestRotateComplete(t *testing.T) {
	c := actiontest.New().Config("", actiontest.Env(map[string]string{"HELM_NAMESPACE": "prod"}))
	o := newRotateCommand(c, action.ModeRun)
	o.complete([]string{"app"})
	if o.a.Release != "app" || o.a.Secret != "app"+DefaultSecretSuffix || o.a.SecretGiven || o.a.Namespace != "prod" {
		t.Fatalf("%+v", o.a)
	}
	o = newRotateCommand(c, action.ModeRun)
	o.a.Secret = "keys"
	o.complete([]string{"app"})
	if o.a.Secret != "keys" || !o.a.SecretGiven {
		t.Fatalf("--secret: %+v", o.a)
	}
}

func TestOtherValidates(t *testing.T) {
	c := actiontest.New().Config("", actiontest.Env(nil))
	status := &statusCommand{targetCommand: targetCommand{cfg: c}}
	for _, tt := range []struct {
		output string
		all    bool
		args   []string
		ok     bool
	}{
		{"table", false, []string{"app"}, true},
		{"yaml", true, nil, true},
		{"json", true, []string{"app"}, false},
		{"table", false, nil, false},
		{"wide", false, []string{"app"}, false},
	} {
		status.output, status.allNamespaces = tt.output, tt.all
		if err := status.validate(tt.args); (err == nil) != tt.ok {
			t.Errorf("status -o %s -A=%v %v: %v", tt.output, tt.all, tt.args, err)
		}
	}
	for _, tt := range []struct {
		name, secret, request string
		timeout               time.Duration
		ok                    bool
	}{
		{"add", "s", "2026q4", time.Minute, true},
		{"cron", "s", "", time.Minute, true},
		{"retire", "s", "", time.Minute, true},
		{"promote-now", "s", "", time.Minute, false},
		{"add", "", "", time.Minute, false},
		{"add", "s", "-bad", time.Minute, false},
		{"add", "s", "", 0, false},
	} {
		h := &hookCommand{cfg: c, a: action.Hook{Name: tt.name, Secret: tt.secret, Request: tt.request, Timeout: tt.timeout}}
		if err := h.validate(); (err == nil) != tt.ok {
			t.Errorf("hook %s --secret %q --request %q --timeout %s: %v", tt.name, tt.secret, tt.request, tt.timeout, err)
		}
	}
	for _, tt := range []struct {
		where, secret, expect string
		want                  guard.Where
		ok                    bool
	}{
		{"pre-upgrade", "s", "absent", guard.UpgradeHook, true},
		{"pre-rollback", "s", "keep=true;active=v1", guard.RollbackHook, true},
		{"post-upgrade", "s", "absent", "", false},
		{"pre-upgrade", "", "absent", "", false},
		{"pre-upgrade", "s", "keep", "", false},
	} {
		g := &hookGuardCommand{cfg: c, where: tt.where, expect: tt.expect}
		g.a.Secret = tt.secret
		err := g.validate()
		if (err == nil) != tt.ok || (tt.ok && g.a.Where != tt.want) {
			t.Errorf("hook guard --where %s --expect %q: %v (%s)", tt.where, tt.expect, err, g.a.Where)
		}
	}
	plan := &planCommand{rotateCommand: *newRotateCommand(c, action.ModeRun), output: "yaml"}
	plan.a.Timeout = time.Minute
	if err := plan.validate(); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("plan -o yaml: %v", err)
	}
	g := &guardCommand{cfg: c}
	if err := g.validate(); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("guard without --release: %v", err)
	}
}
