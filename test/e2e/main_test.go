// Package e2e holds the end-to-end tests: the real rotate-key binary, installed as a plugin into the real Helm 3
// and Helm 4 CLIs, against the cluster-in-a-box (package testcluster), which every test of a `go test` run shares.
package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// cluster is shared by every test of the run; TestMain starts it once and stops it at the end.
var cluster *testcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var err error
	cluster, err = testcluster.Start(ctx, testcluster.Options{Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: cluster-in-a-box started in %s\n", time.Since(began).Round(time.Millisecond))
	code := m.Run()
	trafficMu.Lock()
	fmt.Printf("e2e: %d traffic runs:\n  %s\n", len(trafficLines), strings.Join(trafficLines, "\n  "))
	trafficMu.Unlock()
	// No component may outlive the run: neither the processes the harness started nor envtest's etcd and
	// kube-apiserver.
	left := cluster.StopLeavingNothing()
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: processes left running after Stop: %s\n", strings.Join(left, ", "))
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: cluster stopped, no process left; whole run %s\n", time.Since(began).Round(time.Millisecond))
	return code
}

// newHelm returns an isolated Helm of the given major with the plugin installed.
func newHelm(t *testing.T, major int) *testcluster.Helm {
	t.Helper()
	h, err := cluster.NewHelm(t.TempDir(), major)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.InstallPlugin(context.Background(), cluster.Root); err != nil {
		t.Fatal(err)
	}
	return h
}

// namespace creates a namespace for the test and deletes it afterwards.
func namespace(t *testing.T, prefix string, labels map[string]string) string {
	t.Helper()
	ns, err := cluster.Namespace(context.Background(), prefix, labels)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cluster.Client.CoreV1().Namespaces().Delete(context.Background(), ns, deleteOpts)
	})
	return ns
}

func helmMajors() []int { return []int{3, 4} }
