package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// TestRetiredKeyComesBack (issue 15.2) on a third-party-style chart that renders a fresh v1 whenever the live
// keyring lacks it, after the plugin retired v1: a plain `helm upgrade --reuse-values` (no guard layer runs) brings
// v1 back; `check` exits 5 and `status` names it with the commands that remove it; those commands work as printed;
// then `helm rotate-key upgrade` (the post-renderer) refuses the upgrade that would add it again.
func TestRetiredKeyComesBack(t *testing.T) {
	for _, major := range helmMajors() {
		t.Run(fmt.Sprintf("helm%d", major), func(t *testing.T) {
			parallel(t, 60*time.Second)
			ctx := context.Background()
			h := newHelm(t, major)
			ns := namespace(t, fmt.Sprintf("back%d", major), nil)
			secret := "app-requests-proxy-keys"
			plugin := func(args ...string) (string, error) {
				return h.Run(ctx, append([]string{"-n", ns, "rotate-key"}, append(args, "--secret", secret)...)...)
			}
			keys := func() string {
				s, err := cluster.Client.CoreV1().Secrets(ns).Get(ctx, secret, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				return keyring.DataKeys(s.Data)
			}
			if out, err := h.Run(ctx, append([]string{"-n", ns, "install", "app", runbookChart("runbook-plain"), "--set", "requestsProxy.tokenTtlSeconds=60", "--set", "generateMissingV1=true", "--wait", "--timeout", "2m"}, testcluster.PlainShortMarginValues()...)...); err != nil {
				t.Fatalf("install: %v\n%s", err, out)
			}
			if out, err := plugin("app", "--local", "--yes"); exitCode(err) != 3 {
				t.Fatalf("rotation to the TTL wait: %v\n%s", err, out)
			}
			retireDueOf(t, ns, secret, "") // as if the 60 s TTL had passed
			if out, err := plugin("app", "--local", "--yes"); err != nil || keys() != "active,v2" {
				t.Fatalf("retirement: %v (keys %s)\n%s", err, keys(), out)
			}
			var outputs []string
			if out, err := h.Run(ctx, "-n", ns, "upgrade", "app", runbookChart("runbook-plain"), "--reuse-values"); err != nil || keys() != "active,v1,v2" {
				t.Fatalf("a plain upgrade of the generating chart must bring a fresh v1 back (no guard layer runs): %v (keys %s)\n%s", err, keys(), out)
			}
			status, err := plugin("status", "app")
			outputs = append(outputs, status)
			if err != nil || !strings.Contains(status, "RETIRED KEY BACK:") || !strings.Contains(status, "v1 is back") || !strings.Contains(status, "PROTECTION:") || !strings.Contains(status, "UNPROTECTED: no guard hooks") {
				t.Fatalf("status must name the retired v1 that is back: %v\n%s", err, status)
			}
			check, err := plugin("check", "app")
			outputs = append(outputs, check)
			if exitCode(err) != 5 {
				t.Fatalf("check must exit 5 while the retired v1 is back, got %d\n%s", exitCode(err), check)
			}
			if out, err := plugin("app", "--local", "--yes", "--force", "--reason", "test"); exitCode(err) != 6 || keys() != "active,v1,v2" {
				t.Fatalf("a rotation must be refused while the retired v1 is back: exit %d\n%s", exitCode(err), out)
			}
			// The removal, pasted as check printed it.
			i, j := strings.Index(check, "Remove it: "), strings.Index(check, "; then ")
			if i < 0 || j < i {
				t.Fatalf("check prints no removal command:\n%s", check)
			}
			remove := check[i+len("Remove it: ") : j]
			bin := t.TempDir()
			if err := os.Symlink(cluster.Tools.Kubectl, filepath.Join(bin, "kubectl")); err != nil {
				t.Fatal(err)
			}
			cmd := exec.CommandContext(ctx, "bash", "-c", remove)
			cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig, "PATH="+bin+":"+os.Getenv("PATH"))
			if out, err := cmd.CombinedOutput(); err != nil || keys() != "active,v2" {
				t.Fatalf("the printed removal %q: %v (keys %s)\n%s", remove, err, keys(), out)
			}
			if out, err := plugin("check", "app"); err != nil {
				t.Fatalf("check after the removal: %v\n%s", err, out)
			}
			// The generating chart would add v1 again: the post-renderer refuses that upgrade.
			out, err := h.Run(ctx, "-n", ns, "rotate-key", "upgrade", "app", runbookChart("runbook-plain"), "--reuse-values")
			outputs = append(outputs, out)
			if err == nil || keys() != "active,v2" {
				t.Fatalf("helm rotate-key upgrade must refuse to add the retired v1 again: %v (keys %s)\n%s", err, keys(), out)
			}
			if major == 3 && !strings.Contains(out, "version-retired") {
				t.Errorf("Helm 3 shows the guard's refusal: want rule version-retired in\n%s", out)
			}
			s, err := cluster.Client.CoreV1().Secrets(ns).Get(ctx, secret, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range outputs {
				if strings.Contains(o, string(s.Data["v2"])) {
					t.Fatalf("an output holds the key v2")
				}
			}
		})
	}
}
