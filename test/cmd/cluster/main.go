// Command cluster starts the cluster-in-a-box for a human (`make cluster`) or runs the demo (`make demo`): the
// example chart installed, the plugin installed into Helm 3 and Helm 4, and rotate-key run against the release.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

func main() {
	demo := flag.Bool("demo", false, "install the example chart, install the plugin into both Helms, run rotate-key, then stop")
	keep := flag.Bool("keep", false, "with --demo: keep the cluster running afterwards until Ctrl-C")
	flag.Parse()
	if err := run(*demo, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(demo, keep bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	c, err := testcluster.Start(ctx, testcluster.Options{Logf: logf})
	if err != nil {
		return err
	}
	defer c.Stop()
	h3, err := c.NewHelm(c.Dir, 3)
	if err != nil {
		return err
	}
	h4, err := c.NewHelm(c.Dir, 4)
	if err != nil {
		return err
	}
	for _, h := range []*testcluster.Helm{h3, h4} {
		if err := h.InstallPlugin(ctx, c.Root); err != nil {
			return err
		}
	}
	envFile, err := writeEnvFile(c, h3, h4)
	if err != nil {
		return err
	}
	if demo {
		if err := runDemo(ctx, c, h3, h4); err != nil {
			return err
		}
		if !keep {
			return nil
		}
	}
	fmt.Printf("\nThe cluster is up. In another shell:\n\n  source %s\n  kubectl get nodes\n  helm3 rotate-key --help   # Helm %s with the plugin\n  helm4 rotate-key --help   # Helm %s with the plugin and the guard\n\nKUBECONFIG=%s\nPress Ctrl-C to stop it.\n",
		envFile, c.Tools.Versions["HELM3_VERSION"], c.Tools.Versions["HELM4_VERSION"], c.Kubeconfig)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "stopping the cluster")
	return nil
}

// writeEnvFile writes a shell file that puts kubectl, helm3 and helm4 (each with its isolated folders and the
// plugin installed) on PATH and points KUBECONFIG at the cluster.
func writeEnvFile(c *testcluster.Cluster, helms ...*testcluster.Helm) (string, error) {
	bin := filepath.Join(c.Dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	if err := os.Symlink(c.Tools.Kubectl, filepath.Join(bin, "kubectl")); err != nil {
		return "", err
	}
	for _, h := range helms {
		var b strings.Builder
		b.WriteString("#!/usr/bin/env bash\nexec env -i")
		for _, kv := range h.Env {
			fmt.Fprintf(&b, " %q", kv)
		}
		fmt.Fprintf(&b, " %q \"$@\"\n", h.Bin)
		if err := os.WriteFile(filepath.Join(bin, fmt.Sprintf("helm%d", h.Major)), []byte(b.String()), 0o755); err != nil {
			return "", err
		}
	}
	envFile := filepath.Join(c.Dir, "env.sh")
	content := fmt.Sprintf("export KUBECONFIG=%q\nexport PATH=%q:\"$PATH\"\n", c.Kubeconfig, bin)
	return envFile, os.WriteFile(envFile, []byte(content), 0o644)
}

func runDemo(ctx context.Context, c *testcluster.Cluster, h3, h4 *testcluster.Helm) error {
	ns, err := c.Namespace(ctx, "demo", nil)
	if err != nil {
		return err
	}
	step := func(h *testcluster.Helm, args ...string) error {
		fmt.Printf("\n$ helm%d %s\n", h.Major, strings.Join(args, " "))
		began := time.Now()
		out, err := h.Run(ctx, args...)
		fmt.Print(out)
		fmt.Printf("(%s)\n", time.Since(began).Round(time.Millisecond))
		return err
	}
	chart := filepath.Join(c.Root, "charts", "example-app")
	steps := []struct {
		h    *testcluster.Helm
		args []string
	}{
		{h4, []string{"-n", ns, "install", "demo", chart, "--wait", "--timeout", "2m"}},
		{h3, []string{"plugin", "list"}},
		{h4, []string{"plugin", "list"}},
		{h3, []string{"rotate-key", "--help"}},
		{h3, []string{"-n", ns, "rotate-key", "status", "demo"}},
		{h4, []string{"-n", ns, "rotate-key", "status", "demo", "-o", "json"}},
		{h4, []string{"-n", ns, "upgrade", "demo", chart, "--reuse-values", "--post-renderer", "rotate-key-guard", "--post-renderer-args", "--release=demo", "--wait"}},
		{h3, []string{"-n", ns, "upgrade", "demo", chart, "--reuse-values", "--post-renderer", "rotate-key-guard", "--post-renderer-args", "--release=demo", "--wait"}},
		{h3, []string{"-n", ns, "history", "demo"}},
	}
	for _, s := range steps {
		if err := step(s.h, s.args...); err != nil {
			return err
		}
	}
	fmt.Println("\ndemo: done. The full rotation (`helm rotate-key demo`) arrives with the rotation engine (issue 3).")
	return nil
}
