package e2e

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// withoutEnv returns env without the variables named.
func withoutEnv(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

// TestInstallGuardProtectsHelm3 checks that the Helm 4 guard plugin is never installed where a Helm 3 would load
// it: the shared default folder is refused (and Helm 3 keeps working there), a Helm 3 on PATH that reads the same
// folder is refused unless --helm4-only is given, and Helm 3 itself is pointed at the PATH executable instead.
func TestInstallGuardProtectsHelm3(t *testing.T) {
	ctx := context.Background()

	t.Run("shared default folder", func(t *testing.T) {
		h4, err := cluster.NewHelm(t.TempDir(), 4)
		if err != nil {
			t.Fatal(err)
		}
		h4.Env = withoutEnv(h4.Env, "HELM_DATA_HOME") // Helm 4 on its defaults: the folder Helm 3 uses too
		if out, err := h4.Run(ctx, "plugin", "install", cluster.Root); err != nil {
			t.Fatalf("plugin install: %v\n%s", err, out)
		}
		out, err := h4.Run(ctx, "rotate-key", "install-guard")
		var exitErr *exec.ExitError
		if err == nil || !asExit(err, &exitErr) || exitErr.ExitCode() != 6 || !strings.Contains(out, "also Helm 3's default plugins folder") || !strings.Contains(out, "HELM_DATA_HOME=") {
			t.Fatalf("install-guard into the shared folder: want exit 6 and the way out, got %v\n%s", err, out)
		}
		// A Helm 3 with the same HOME still loads its plugins, including rotate-key.
		h3 := &testcluster.Helm{Major: 3, Bin: cluster.Tools.Helm3, Env: h4.Env}
		out, err = h3.Run(ctx, "plugin", "list")
		if err != nil || !strings.Contains(out, "rotate-key") || strings.Contains(out, "failed to load") {
			t.Fatalf("Helm 3 after the refused install: %v\n%s", err, out)
		}
	})

	t.Run("helm3 on PATH reads the same folder", func(t *testing.T) {
		h4, err := cluster.NewHelm(t.TempDir(), 4)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := h4.Run(ctx, "plugin", "install", cluster.Root); err != nil {
			t.Fatalf("plugin install: %v\n%s", err, out)
		}
		if err := os.Symlink(cluster.Tools.Helm3, filepath.Join(h4.GuardDir, "helm")); err != nil {
			t.Fatal(err)
		}
		out, err := h4.Run(ctx, "rotate-key", "install-guard")
		if err == nil || !strings.Contains(out, "reads plugins from") || !strings.Contains(out, "--helm4-only") {
			t.Fatalf("install-guard with a Helm 3 on PATH: want a refusal, got %v\n%s", err, out)
		}
		if out, err := h4.Run(ctx, "rotate-key", "install-guard", "--helm4-only"); err != nil {
			t.Fatalf("install-guard --helm4-only: %v\n%s", err, out)
		}
		if out, err := h4.Run(ctx, "plugin", "list"); err != nil || !strings.Contains(out, "rotate-key-guard") {
			t.Fatalf("guard plugin not listed: %v\n%s", err, out)
		}
	})

	t.Run("helm3 is told to use PATH", func(t *testing.T) {
		h3 := newHelm(t, 3)
		out, err := h3.Run(ctx, "rotate-key", "install-guard")
		if err == nil || !strings.Contains(out, "Put the guard on PATH instead") {
			t.Fatalf("install-guard under Helm 3: %v\n%s", err, out)
		}
	})
}

func asExit(err error, target **exec.ExitError) bool {
	for err != nil {
		if e, ok := err.(*exec.ExitError); ok {
			*target = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// copyCheckout copies the repository's source (no bin/, .cache/ or .git/) to a fresh folder, as a clone would be.
func copyCheckout(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "helm-rotate-key")
	err := filepath.WalkDir(cluster.Root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(cluster.Root, path)
		if d.IsDir() && (rel == "bin" || rel == ".cache" || rel == ".git") {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if d.Type()&fs.ModeSymlink != 0 { // e.g. the example chart's link to the library: copied as a link
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestPluginInstallBuildsFromSource: `helm plugin install <checkout>` without a binary builds one with the local
// Go toolchain (Helm 3 and Helm 4), and says clearly what to do when Go is missing.
func TestPluginInstallBuildsFromSource(t *testing.T) {
	ctx := context.Background()
	checkout := copyCheckout(t)
	for _, major := range helmMajors() {
		h, err := cluster.NewHelm(t.TempDir(), major)
		if err != nil {
			t.Fatal(err)
		}
		out, err := h.Run(ctx, "plugin", "install", checkout)
		if err != nil || !strings.Contains(out, "building bin/rotate-key") {
			t.Fatalf("helm%d plugin install of a checkout without a binary: %v\n%s", major, err, out)
		}
		out, err = h.Run(ctx, "rotate-key", "version")
		if err != nil || !strings.HasPrefix(out, "rotate-key v0.1.0") {
			t.Fatalf("helm%d rotate-key version after a source build: %v\n%s", major, err, out)
		}
		t.Logf("helm%d: built from source: %s", major, strings.TrimSpace(out))
		if err := os.RemoveAll(filepath.Join(checkout, "bin")); err != nil {
			t.Fatal(err)
		}
	}

	h, err := cluster.NewHelm(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	h.Env = append(withoutEnv(h.Env, "PATH"), "PATH=/usr/bin:/bin")
	if _, err := exec.LookPath("/usr/bin/go"); err == nil {
		t.Skip("/usr/bin/go exists: cannot hide the Go toolchain")
	}
	out, err := h.Run(ctx, "plugin", "install", checkout)
	if err == nil || !strings.Contains(out, "the Go toolchain (go 1.26 or newer) is not on PATH") {
		t.Fatalf("plugin install without Go: want the clear message, got %v\n%s", err, out)
	}
}
