package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

var deleteOpts = metav1.DeleteOptions{}

func exampleChart() string { return filepath.Join(cluster.Root, "charts", "example-app") }

// installExample installs the example chart as release name, with its rotate-key Jobs placed on the runner node
// (so that every later upgrade runs its hook Jobs for real).
func installExample(ctx context.Context, h *testcluster.Helm, ns, name string, args ...string) (string, error) {
	return h.Run(ctx, append(append(append([]string{"-n", ns, "install", name, exampleChart()}, testcluster.RunnerValues()...), testcluster.ShortMarginValues()...), args...)...)
}

// hookJobLogs is the output of every rotate-key Job pod the runner executed in ns, in pod-name order.
func hookJobLogs(t *testing.T, ns string) string {
	t.Helper()
	logs := cluster.NamespaceLogs(ns)
	names := make([]string, 0, len(logs))
	for name := range logs {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		fmt.Fprintf(&b, "--- %s\n%s", name, logs[name])
	}
	return b.String()
}

// statusReport is the part of `rotate-key status -o json` these tests read.
type statusReport struct {
	Namespace string `json:"namespace"`
	Release   *struct {
		Name     string `json:"name"`
		Revision int    `json:"revision"`
		Status   string `json:"status"`
		Chart    string `json:"chart"`
	} `json:"release"`
	Secret      string   `json:"secret"`
	SecretFound bool     `json:"secretFound"`
	Versions    []string `json:"versions"`
	Active      string   `json:"active"`
}

// TestPluginLoadsOnBothHelms installs the plugin into Helm 3.22 and Helm 4.3 and runs it through each: help,
// version, and `helm -n NS rotate-key status` on a release that Helm installed, which proves that the namespace
// Helm consumed reaches the plugin and that the release record (read with the Helm 4 SDK types) is readable
// whichever Helm wrote it.
func TestPluginLoadsOnBothHelms(t *testing.T) {
	for _, major := range helmMajors() {
		t.Run(fmt.Sprintf("helm%d", major), func(t *testing.T) {
			ctx := context.Background()
			h := newHelm(t, major)

			out, err := h.Run(ctx, "plugin", "list")
			if err != nil || !strings.Contains(out, "rotate-key") {
				t.Fatalf("plugin list: %v\n%s", err, out)
			}
			if major == 4 && !strings.Contains(out, "rotate-key-guard") {
				t.Fatalf("Helm 4 plugin list lacks the guard plugin:\n%s", out)
			}
			out, err = h.Run(ctx, "rotate-key", "--help")
			if err != nil || !strings.Contains(out, "rotate-key rotates the HMAC signing keys") || !strings.Contains(out, "Exit codes") {
				t.Fatalf("helm rotate-key --help: %v\n%s", err, out)
			}
			out, err = h.Run(ctx, "rotate-key", "version")
			if err != nil || !strings.HasPrefix(out, "rotate-key ") {
				t.Fatalf("helm rotate-key version: %v\n%s", err, out)
			}
			t.Logf("helm%d rotate-key version: %s", major, strings.TrimSpace(out))

			ns := namespace(t, fmt.Sprintf("plugin-h%d", major), nil)
			if out, err := installExample(ctx, h, ns, "app", "--wait", "--timeout", "2m"); err != nil {
				t.Fatalf("install: %v\n%s", err, out)
			}
			// -n comes before the plugin name: Helm consumes it and passes it on only as HELM_NAMESPACE.
			stdout, stderr, err := h.RunSplit(ctx, "-n", ns, "rotate-key", "status", "app", "-o", "json")
			if err != nil {
				t.Fatalf("helm -n %s rotate-key status: %v\n%s%s", ns, err, stdout, stderr)
			}
			var r statusReport
			if err := json.Unmarshal([]byte(stdout), &r); err != nil {
				t.Fatalf("status -o json is not JSON: %v\n%s", err, stdout)
			}
			if r.Namespace != ns {
				t.Fatalf("namespace reaching the plugin = %q, want %q", r.Namespace, ns)
			}
			if r.Release == nil || r.Release.Name != "app" || r.Release.Revision != 1 || r.Release.Status != "deployed" || r.Release.Chart != "example-app" {
				t.Fatalf("release record not read: %+v", r.Release)
			}
			if !r.SecretFound || r.Secret != "app-requests-proxy-admin" || strings.Join(r.Versions, ",") != "key.v1" || r.Active != "v1" {
				t.Fatalf("keyring not reported: %+v", r)
			}
			// The same flags work on the standalone binary.
			cmd := exec.Command(cluster.Binary, "--kubeconfig", cluster.Kubeconfig, "-n", ns, "status", "app", "-o", "json")
			b, err := cmd.Output()
			if err != nil {
				t.Fatalf("standalone status: %v", err)
			}
			var r2 statusReport
			if err := json.Unmarshal(b, &r2); err != nil || r2.Namespace != ns || !r2.SecretFound {
				t.Fatalf("standalone status: %v %+v", err, r2)
			}
		})
	}
}

// TestHelm3ReleaseStaysManagedByHelm3 checks the SDK choice (docs/decisions.md): a release written by the Helm 3
// CLI is read by rotate-key (Helm 4 SDK types), and Helm 3 keeps upgrading it afterwards.
func TestHelm3ReleaseStaysManagedByHelm3(t *testing.T) {
	ctx := context.Background()
	h := newHelm(t, 3)
	ns := namespace(t, "sdk-h3", nil)
	if out, err := installExample(ctx, h, ns, "app"); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	if out, err := h.Run(ctx, "-n", ns, "upgrade", "app", exampleChart(), "--reuse-values", "--set", "jobsManager.replicas=1"); err != nil {
		t.Fatalf("upgrade: %v\n%s", err, out)
	}
	stdout, _, err := h.RunSplit(ctx, "-n", ns, "rotate-key", "status", "app", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var r statusReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || r.Release == nil || r.Release.Revision != 2 {
		t.Fatalf("Helm 3 release revision 2 not read: %v %s", err, stdout)
	}
	if out, err := h.Run(ctx, "-n", ns, "upgrade", "app", exampleChart(), "--reuse-values", "--set", "jobsManager.replicas=2"); err != nil {
		t.Fatalf("Helm 3 upgrade after rotate-key read the release: %v\n%s", err, out)
	}
	if out, err := h.Run(ctx, "-n", ns, "history", "app"); err != nil || strings.Count(out, "\n") != 4 {
		t.Fatalf("history after three revisions: %v\n%s", err, out)
	}
}
