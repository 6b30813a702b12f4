package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestNoCommandMakesHelmPrintKeys runs every command that runs a child helm with Helm's --debug on (which Helm
// hands to a plugin as HELM_DEBUG=true), and the passthrough flags that make helm upgrade print the release it
// rendered, on both Helms, and scans everything printed for the keyring's keys. The example chart renders its
// keyring with lookup, so the rendered manifest holds every key: a child helm that printed it would leak them.
func TestNoCommandMakesHelmPrintKeys(t *testing.T) {
	t.Parallel()
	for _, major := range helmMajors() {
		t.Run(fmt.Sprintf("helm%d", major), func(t *testing.T) {
			parallel(t, 45*time.Second)
			ctx := context.Background()
			h := newHelm(t, major)
			ns := namespace(t, fmt.Sprintf("debug-h%d", major), nil)
			if out, err := installExample(ctx, h, ns, "app", "--set", "tokenTtlSeconds=60", "--wait", "--timeout", "2m"); err != nil {
				t.Fatalf("install: %v\n%s", err, out)
			}
			var outputs []string
			run := func(wantOK bool, args ...string) string {
				t.Helper()
				out, err := h.Run(ctx, append([]string{"-n", ns}, args...)...)
				outputs = append(outputs, out)
				var exit *exec.ExitError
				if errors.As(err, &exit) && exit.ExitCode() == 3 && args[2] == "app" {
					err = nil // the hook path's run ends Waiting (exit 3: the retirement waits for the TTL)
				}
				if wantOK && err != nil {
					t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
				}
				if !wantOK && err == nil {
					t.Fatalf("%s: want a refusal, it ran:\n%s", strings.Join(args, " "), out)
				}
				return out
			}
			run(true, "--debug", "rotate-key", "upgrade", "app", exampleChart(), "--reuse-values", "--set", "jobsManager.replicas=1")
			run(true, "--debug", "rotate-key", "rollback", "app", "1")
			run(true, "--debug", "rotate-key", "app", "--yes")
			for _, flags := range [][]string{{"--dry-run"}, {"--dry-run=server"}, {"-o", "json"}, {"--output=yaml"}} {
				out := run(false, append([]string{"rotate-key", "upgrade", "app", exampleChart(), "--reuse-values"}, flags...)...)
				if !strings.Contains(out, "key bytes") {
					t.Errorf("rotate-key upgrade %s: the refusal does not say why:\n%s", strings.Join(flags, " "), out)
				}
			}
			assertNoKeyInOutputs(t, ns, outputs)
			t.Logf("helm%d: %d outputs (%d bytes) scanned, no key in them", major, len(outputs), len(strings.Join(outputs, "")))
		})
	}
}
