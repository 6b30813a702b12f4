package action_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebloc/helm-rotate-key/internal/action"
	"github.com/tracebloc/helm-rotate-key/internal/action/actiontest"
	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
)

// (moved from internal/cli: the decisions now live in action.InstallGuard; Helm is the recording fake.)
func TestInstallGuardDecisions(t *testing.T) {
	home := t.TempDir()
	pluginDir := filepath.Join(t.TempDir(), "rotate-key")
	if err := os.MkdirAll(filepath.Join(pluginDir, "plugins", action.GuardExecutable), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pluginDir, "plugins", action.GuardExecutable, "plugin.yaml"), []byte("name: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pathDir := t.TempDir()
	helm3OnPath := filepath.Join(pathDir, "helm")
	if err := os.WriteFile(helm3OnPath, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(home, ".local", "share", "helm", "plugins")
	own := filepath.Join(home, "helm4", "plugins")
	tests := []struct {
		name      string
		version   string
		plugins   string
		path      string
		helm4Only bool
		wantErr   string
	}{
		{"helm 3 is sent to PATH", "v3.22.0", own, "", false, "Put the guard on PATH instead"},
		{"default folder is shared", "v4.3.1", shared, "", false, "also Helm 3's default plugins folder"},
		{"own folder, no helm 3 on PATH", "v4.3.1", own, "", false, ""},
		{"own folder, helm 3 on PATH reads it", "v4.3.1", own, pathDir, false, "--helm4-only"},
		{"own folder, helm 3 on PATH, --helm4-only", "v4.3.1", own, pathDir, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := actiontest.New()
			f.Helm.Answer = func(bin string, args []string) (string, int) {
				switch {
				case args[0] == "version" && bin == "helm":
					return tt.version, 0
				case args[0] == "version":
					return "v3.22.0", 0
				case args[0] == "env":
					return tt.plugins + "\n", 0
				case args[0] == "plugin":
					return "Installed plugin: rotate-key-guard\n", 0
				}
				return "", 1
			}
			c := f.Config("", actiontest.Env(map[string]string{"HOME": home, "PATH": tt.path, "HELM_PLUGIN_DIR": pluginDir, "HELM_PLUGINS": tt.plugins}))
			a := &action.InstallGuard{Helm4Only: tt.helm4Only}
			if err := a.Complete(c); err != nil {
				t.Fatal(err)
			}
			err := a.Run(context.Background(), c)
			if tt.wantErr == "" {
				if err != nil || !strings.Contains(f.Out.String(), "--post-renderer rotate-key-guard") {
					t.Fatalf("want success, got %v %q", err, f.Out.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitcode.Of(err) != exitcode.Refused {
				t.Fatalf("want refusal containing %q, got %v (exit %d)", tt.wantErr, err, exitcode.Of(err))
			}
		})
	}
}
