package testcluster

import (
	"bytes"
	"context"
	"fmt"
	"github.com/tracebloc/helm-rotate-key/internal/helmexec"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Helm is one Helm CLI (3 or 4) with folders of its own: its config, data, cache and plugins live under Home, so
// tests never touch the machine's Helm and never see each other's plugins.
type Helm struct {
	Major int
	Bin   string
	Home  string
	// Env is the environment every Run uses: the process environment without HELM_* and KUBECONFIG, plus
	// HOME, XDG_* and HELM_*_HOME under Home, KUBECONFIG, and PATH starting with GuardDir.
	Env []string
	// GuardDir is on PATH and holds rotate-key-guard, so `--post-renderer rotate-key-guard` resolves on Helm 3.
	GuardDir string
}

// NewHelm prepares an isolated Helm of the given major version (3 or 4) under a fresh folder in dir.
func (c *Cluster) NewHelm(dir string, major int) (*Helm, error) {
	bin := c.Tools.Helm3
	if major == 4 {
		bin = c.Tools.Helm4
	}
	home, err := os.MkdirTemp(dir, fmt.Sprintf("helm%d-", major))
	if err != nil {
		return nil, err
	}
	h := &Helm{Major: major, Bin: bin, Home: home, GuardDir: filepath.Join(home, "bin")}
	if err := os.MkdirAll(h.GuardDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Symlink(filepath.Join(filepath.Dir(c.Binary), "rotate-key-guard"), filepath.Join(h.GuardDir, "rotate-key-guard")); err != nil {
		return nil, err
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "HELM_") || strings.HasPrefix(k, "XDG_") || k == "KUBECONFIG" || k == "HOME" || k == "PATH" {
			continue
		}
		h.Env = append(h.Env, kv)
	}
	h.Env = append(h.Env,
		"HOME="+home,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_DATA_HOME="+filepath.Join(home, ".local", "share"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		"KUBECONFIG="+c.Kubeconfig,
		"PATH="+h.GuardDir+string(os.PathListSeparator)+os.Getenv("PATH"),
	)
	// The Go caches stay the user's own (a fresh HOME would otherwise mean a cold module and build cache for the
	// plugin's source build), as they would for a real user whose HOME is not a temporary folder.
	h.Env = append(h.Env, c.goEnv...)
	if major == 4 {
		// Helm 4 gets a data home of its own: the default plugins folder is shared with Helm 3, and the guard
		// plugin (apiVersion: v1) there would break Helm 3 (see `rotate-key install-guard`).
		h.Env = append(h.Env, "HELM_DATA_HOME="+filepath.Join(home, ".local", "share", "helm4"))
	}
	return h, nil
}

// InstallPlugin installs this repository's checkout as the rotate-key plugin and, on Helm 4, the guard plugin
// through `helm rotate-key install-guard`.
func (h *Helm) InstallPlugin(ctx context.Context, root string) error {
	if out, err := h.Run(ctx, "plugin", "install", root); err != nil {
		return fmt.Errorf("helm%d plugin install: %w\n%s", h.Major, err, out)
	}
	if h.Major == 4 {
		if out, err := h.Run(ctx, "rotate-key", "install-guard"); err != nil {
			return fmt.Errorf("helm4 rotate-key install-guard: %w\n%s", err, out)
		}
	}
	return nil
}

// Run runs this Helm with args and returns stdout and stderr together (Helm interleaves its warnings).
func (h *Helm) Run(ctx context.Context, args ...string) (string, error) {
	stdout, stderr, err := h.RunSplit(ctx, args...)
	return stdout + stderr, err
}

// RunSplit runs this Helm with args and returns stdout and stderr apart.
func (h *Helm) RunSplit(ctx context.Context, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Bin, args...)
	cmd.Env = h.Env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("helm%d %s: %w", h.Major, strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), err
}

// WriteWrapper writes an executable script at path that runs this Helm with its isolated environment (plugin
// installed), for a shell or a document test to call as `helm`. Every value is single-quoted: the environment
// may hold `$` and backslashes (make puts MAKEOVERRIDES=${-*-command-variables-*-} there).
func (h *Helm) WriteWrapper(path string) error {
	var b strings.Builder
	b.WriteString("#!/usr/bin/env bash\nexec env -i")
	for _, kv := range h.Env {
		b.WriteString(" " + helmexec.QuoteWord(kv))
	}
	b.WriteString(" " + helmexec.QuoteWord(h.Bin) + " \"$@\"\n")
	return os.WriteFile(path, []byte(b.String()), 0o755)
}

// ShellWords joins words into a shell command line, quoting every word that needs it (helmexec.Quote), so
// golden-file headers and the bench's reproduction commands can be pasted as they are.
func ShellWords(words []string) string { return helmexec.Quote(words) }
