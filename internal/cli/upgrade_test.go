package cli

import (
	"strings"
	"testing"

	"github.com/tracebloc/helm-rotate-key/internal/action/actiontest"
)

// (moved from internal/cli/hookpath_test.go)
func TestUpgradeArguments(t *testing.T) {
	c := actiontest.New().Config("", func(string) string { return "" })
	a, err := completeUpgrade(c, []string{"app", "./chart", "-n", "team", "--set", "a=b", "-f", "v.yaml", "--kube-context=prod", "--reuse-values"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Release != "app" || a.Chart != "./chart" || a.Namespace != "team" || c.Settings.KubeContext != "prod" ||
		strings.Join(a.HelmArgs, " ") != "--set a=b -f v.yaml --reuse-values" {
		t.Fatalf("got release %q chart %q ns %q context %q helm args %q", a.Release, a.Chart, a.Namespace, c.Settings.KubeContext, a.HelmArgs)
	}
	for _, args := range [][]string{{"-f", "v.yaml", "app", "./chart"}, {"app"}, {"app", "./chart", "--post-renderer", "x"}, {"app", "./chart", "-n"}} {
		if _, err := completeUpgrade(c, args); err == nil {
			t.Errorf("%q: want a usage error", args)
		}
	}
}

// A flag that makes helm upgrade print the release it rendered is refused before helm runs: the rendered keyring
// holds the key bytes. The e2e TestNoCommandMakesHelmPrintKeys runs the refusals against both Helms.
func TestUpgradeRefusesFlagsThatPrintTheRelease(t *testing.T) {
	c := actiontest.New().Config("", func(string) string { return "" })
	for _, flags := range [][]string{{"--dry-run"}, {"--dry-run=server"}, {"--dry-run=client"}, {"-o", "json"}, {"--output", "yaml"},
		{"--output=json"}, {"-ojson"}, {"-o=yaml"}, {"--debug"}} {
		_, err := completeUpgrade(c, append([]string{"app", "./chart", "--reuse-values"}, flags...))
		if err == nil || !strings.Contains(err.Error(), "key bytes") || !strings.Contains(err.Error(), "Nothing ran") {
			t.Errorf("%q: want a refusal that says why, got %v", flags, err)
		}
	}
	for _, flags := range [][]string{{"-o", "table"}, {"--output=table"}, {"--dry-run=false"}, {"--debug=false"}, {"--set", "o=json"}} {
		if _, err := completeUpgrade(c, append([]string{"app", "./chart"}, flags...)); err != nil {
			t.Errorf("%q: want it passed through, got %v", flags, err)
		}
	}
}

// Issue 15.3: --force (Helm 3) and --force-replace (Helm 4) replace the keyring Secret with the render, which
// erases the rotation state, the lease and the retired-up-to mark: refused before helm runs.
func TestUpgradeRefusesReplacingTheKeyring(t *testing.T) {
	c := actiontest.New().Config("", func(string) string { return "" })
	for _, flags := range [][]string{{"--force"}, {"--force=true"}, {"--force-replace"}, {"--force-replace=true"}} {
		_, err := completeUpgrade(c, append([]string{"app", "./chart", "--reuse-values"}, flags...))
		if err == nil || !strings.Contains(err.Error(), "rotation state") || !strings.Contains(err.Error(), "Nothing ran") {
			t.Errorf("%q: want a refusal that says why, got %v", flags, err)
		}
	}
	for _, flags := range [][]string{{"--force=false"}, {"--force-replace=false"}, {"--force-conflicts"}} {
		if _, err := completeUpgrade(c, append([]string{"app", "./chart"}, flags...)); err != nil {
			t.Errorf("%q: want it passed through, got %v", flags, err)
		}
	}
}
