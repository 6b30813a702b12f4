package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBinaryLinksNoHelmSDK keeps the Helm SDK out of the binary: its chart and release packages cost every
// invocation — the post-renderer runs on every helm upgrade — about 13 ms of package initialisation
// (docs/decisions.md, "Helm SDK"). Tests may import it; the binary reads release records with internal/release.
func TestBinaryLinksNoHelmSDK(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 100 {
		t.Fatalf("go list -deps listed %d packages: not the binary's import graph", len(deps))
	}
	for _, p := range deps {
		if strings.HasPrefix(p, "helm.sh/") {
			t.Errorf("the rotate-key binary links %s: read release records through internal/release instead", p)
		}
	}
}
