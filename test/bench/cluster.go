package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// clusterEnv is what a cluster stage gets: the benchEnv, the running cluster-in-a-box (its admin kubeconfig,
// client and rest config), and one isolated Helm 3 and one Helm 4, each with the rotate-key plugin installed (and,
// on Helm 4, the rotate-key-guard post-renderer plugin) and rotate-key-guard on its PATH. Stages create their own
// namespaces (env.namespace) and leave them: the cluster is thrown away at the end.
type clusterEnv struct {
	*benchEnv
	cluster *testcluster.Cluster
	helms   []*testcluster.Helm // Helm 3, then Helm 4
}

// clusterStartTimeout bounds starting the cluster and installing the plugin into both Helms.
const clusterStartTimeout = 4 * time.Minute

// withClusterEnv starts the cluster-in-a-box as the e2e tests do (testcluster.Start), prepares both Helms, runs
// fn, then stops the cluster — also when fn panics or the bench gets SIGINT/SIGTERM (the context ends, the stages
// return, the deferred Stop runs) — and records as a must-hold that no component outlived it. It returns the
// report's line about the cluster.
func withClusterEnv(ctx context.Context, env *benchEnv, tools testcluster.Tools, r *report, fn func(*clusterEnv)) string {
	if others := testcluster.ToolProcesses(tools.Dir); len(others) > 0 {
		env.logf("WARNING: %d tool processes already running (another cluster: an e2e run or make cluster?); the figures will be noisy", len(others))
	}
	// testcluster.Start rebuilds bin/rotate-key with plain `go build` (no -s -w, no version): keep make build's
	// binary aside and put it back, so that every figure of the report is of the same binary.
	saved, err := keepBinary(env.binary)
	if err != nil {
		r.must(false, "the cluster-in-a-box started (%v)", err)
		return "The cluster sections failed to start."
	}
	defer os.Remove(saved)
	// envtest logs through controller-runtime, which prints a warning with a stack trace when no logger was set.
	ctrllog.SetLogger(ctrllog.Log.WithSink(ctrllog.NullLogSink{}))
	env.logf("starting the cluster-in-a-box …")
	began := time.Now()
	sctx, cancel := context.WithTimeout(ctx, clusterStartTimeout)
	defer cancel()
	c, err := testcluster.Start(sctx, testcluster.Options{Logf: env.logf})
	if err != nil {
		r.must(false, "the cluster-in-a-box started (%s)", tailString(err.Error(), 300))
		return "The cluster sections failed to start."
	}
	defer func() {
		left := c.StopLeavingNothing()
		r.must(len(left) == 0, "the cluster-in-a-box stopped with no process left behind%s", strings.Join(append([]string{""}, left...), " "))
		if r.failures() == 0 {
			os.RemoveAll(c.Dir)
			env.logf("cluster stopped")
		} else {
			env.logf("cluster stopped; its logs are kept in %s", filepath.Join(c.Dir, "logs"))
		}
	}()
	if c.Binary == env.binary {
		if err := restoreBinary(saved, env.binary); err != nil {
			r.must(false, "make build's binary put back after the cluster start (%v)", err)
			return "The cluster sections did not run."
		}
	}
	startup := time.Since(began)
	cenv := &clusterEnv{benchEnv: env, cluster: c}
	for _, major := range []int{3, 4} {
		h, err := c.NewHelm(c.Dir, major)
		if err == nil {
			err = h.InstallPlugin(sctx, c.Root)
		}
		if err != nil {
			r.must(false, "Helm %d prepared with the plugin installed (%s)", major, tailString(err.Error(), 300))
			return "The cluster sections did not run."
		}
		cenv.helms = append(cenv.helms, h)
	}
	env.logf("cluster up and both Helms ready in %s", time.Since(began).Round(time.Millisecond))
	fn(cenv)
	return fmt.Sprintf("Cluster sections: the cluster-in-a-box of the e2e tests (internal/testcluster: etcd %s, kube-apiserver, controller-manager and scheduler %s, kwok %s nodes; started in %s), Helm %s and Helm %s with the plugin installed.",
		c.Tools.Versions["ETCD_VERSION"], c.Tools.Versions["K8S_VERSION"], c.Tools.Versions["KWOK_VERSION"], startup.Round(time.Second),
		c.Tools.Versions["HELM3_VERSION"], c.Tools.Versions["HELM4_VERSION"])
}

// keepBinary copies the binary to a temporary file beside it and returns its path.
func keepBinary(path string) (string, error) {
	src, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer src.Close()
	dst, err := os.CreateTemp(filepath.Dir(path), ".rotate-key-bench-*")
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		os.Remove(dst.Name())
		return "", err
	}
	if err := dst.Chmod(0o755); err != nil {
		dst.Close()
		return "", err
	}
	return dst.Name(), dst.Close()
}

// restoreBinary puts the kept copy back in place (a rename: a process running the old file is unaffected).
func restoreBinary(saved, path string) error {
	tmp := saved + ".restore"
	src, err := os.ReadFile(saved)
	if err != nil {
		return err
	}
	if err := os.WriteFile(tmp, src, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// namespace creates a fresh namespace for a stage (and waits for its default ServiceAccount).
func (e *clusterEnv) namespace(ctx context.Context, prefix string) (string, error) {
	return e.cluster.Namespace(ctx, "bench-"+prefix, nil)
}

// kubeEnv is the bench's environment with KUBECONFIG pointing at the cluster: what a rotate-key process run by
// hand needs.
func (e *clusterEnv) kubeEnv() []string { return withEnv("KUBECONFIG=" + e.cluster.Kubeconfig) }

// helmRun runs one Helm command with the Helm's isolated environment and returns its wall time (a whole process,
// as for every other figure) and its combined output.
func helmRun(ctx context.Context, h *testcluster.Helm, args ...string) (time.Duration, string, error) {
	began := time.Now()
	out, err := h.Run(ctx, args...)
	return time.Since(began), out, err
}
