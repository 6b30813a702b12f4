// Command cluster starts the cluster-in-a-box for a human (`make cluster`) or runs the demo (`make demo`): the
// example chart installed, the plugin installed into Helm 3 and Helm 4, and rotate-key run against the release.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
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
		if err := h.WriteWrapper(filepath.Join(bin, fmt.Sprintf("helm%d", h.Major))); err != nil {
			return "", err
		}
	}
	envFile := filepath.Join(c.Dir, "env.sh")
	content := fmt.Sprintf("export KUBECONFIG='%s'\nexport PATH='%s':\"$PATH\"\n", c.Kubeconfig, bin)
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
	type cmd struct {
		h        *testcluster.Helm
		args     []string
		exitCode int
	}
	run := func(steps ...cmd) error {
		for _, s := range steps {
			err := step(s.h, s.args...)
			var exitErr *exec.ExitError
			code := 0
			if errors.As(err, &exitErr) {
				code = exitErr.ExitCode()
			} else if err != nil {
				return err
			}
			if code != s.exitCode {
				return fmt.Errorf("helm%d %s: exit code %d, expected %d", s.h.Major, strings.Join(s.args, " "), code, s.exitCode)
			}
		}
		return nil
	}
	// A real TTL of 60 s (the chart's minimum) and a 60 s clock-skew margin keep the demo short; production charts
	// keep 90 days and 5 minutes. The example chart has the rotation hook Jobs, so `helm rotate-key` rotates through
	// them (an upgrade with the release's own chart and values); the Jobs run on the runner node, which executes
	// their pods for real.
	install := append(append([]string{"-n", ns, "install", "demo", chart, "--set", "tokenTtlSeconds=60", "--wait", "--timeout", "2m"}, testcluster.RunnerValues()...), testcluster.ShortMarginValues()...)
	if err := run(
		cmd{h4, install, 0},
		cmd{h3, []string{"plugin", "list"}, 0},
		cmd{h4, []string{"plugin", "list"}, 0},
		cmd{h4, []string{"-n", ns, "rotate-key", "status", "demo"}, 0},
		cmd{h4, []string{"-n", ns, "rotate-key", "plan", "demo"}, 0},
		cmd{h4, []string{"-n", ns, "rotate-key", "demo", "--yes"}, 3},
		cmd{h3, []string{"-n", ns, "rotate-key", "status", "demo"}, 0},
		cmd{h4, []string{"-n", ns, "rotate-key", "upgrade", "demo", chart, "--reuse-values", "--wait"}, 0},
	); err != nil {
		return err
	}
	fmt.Printf("\ndemo: waiting for the 60 s token TTL before the old key can be retired\n")
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(63 * time.Second):
	}
	if err := run(
		cmd{h4, []string{"-n", ns, "rotate-key", "demo", "--yes"}, 0},
		cmd{h4, []string{"-n", ns, "rotate-key", "status", "demo"}, 0},
		cmd{h4, []string{"-n", ns, "history", "demo"}, 0},
	); err != nil {
		return err
	}
	fmt.Println("\ndemo: done — key v2 added, rolled out, promoted, rolled out again by the chart's hook Jobs; v1 retired after the TTL.")
	return nil
}
