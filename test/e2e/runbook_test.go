package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// TestRunbookIsFollowableCold executes every shell block of the operator runbook, in order, against the
// cluster-in-a-box: once for Part A (helm rotate-key) and once for Part B (kubectl by hand), each on its own
// release of the example chart installed with a 60 s token TTL (the documented setting tokenTtlSeconds). Only the
// placeholders <namespace> and <release> are substituted. Each pass must rotate v1 -> v2 and end with a valid
// keyring holding only key.v2, active v2. A block marked skip is reported with its reason; every other block runs.
func TestRunbookIsFollowableCold(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(cluster.Root, testcluster.RunbookPath))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := testcluster.ParseRunbook(string(text))
	if err != nil {
		t.Fatal(err)
	}
	ran := map[int]bool{}
	for _, pass := range []string{"Part A", "Part B"} {
		t.Run(pass, func(t *testing.T) {
			t.Parallel()
			runRunbookPass(t, pass, blocks, ran)
		})
	}
	t.Cleanup(func() {
		var skipped []string
		for _, b := range blocks {
			switch {
			case b.Skip != "":
				skipped = append(skipped, fmt.Sprintf("line %d (%s)", b.Line, b.Skip))
			case !ran[b.Line] && !t.Failed():
				t.Errorf("%s:%d: an unmarked block did not run", testcluster.RunbookPath, b.Line)
			}
		}
		ranMu.Lock()
		defer ranMu.Unlock()
		t.Logf("runbook: %d shell blocks, %d run, %d skipped as marked: %s", len(blocks), len(ran), len(skipped), strings.Join(skipped, "; "))
	})
}

var ranMu sync.Mutex

func runRunbookPass(t *testing.T, pass string, blocks []testcluster.RunbookBlock, ran map[int]bool) {
	ctx := context.Background()
	h := newHelm(t, map[string]int{"Part A": 4, "Part B": 3}[pass])
	ns := namespace(t, "runbook-"+strings.ToLower(strings.TrimPrefix(pass, "Part ")), nil)
	const release = "requests-proxy"
	if out, err := installExample(ctx, h, ns, release, "--set", "tokenTtlSeconds=60", "--wait", "--timeout", "2m"); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	// The operator's shell: helm (this Helm, plugin installed) and kubectl on PATH, KUBECONFIG set.
	shell, err := testcluster.NewOperatorShell(t.TempDir(), h, cluster.Tools.Kubectl, cluster.Kubeconfig, ns, release)
	if err != nil {
		t.Fatal(err)
	}
	var outputs []string
	count := 0
	for _, b := range blocks {
		if !b.InPass(pass) || b.Skip != "" {
			continue
		}
		out, code, err := shell.Run(b)
		outputs = append(outputs, out)
		if err != nil || code != b.Exit {
			t.Fatalf("%s:%d (%s, %s): exit %d, want %d (%v)\n%s\n--- output:\n%s", testcluster.RunbookPath, b.Line, pass, b.Section, code, b.Exit, err, shell.Substituted(b), out)
		}
		count++
		ranMu.Lock()
		ran[b.Line] = true
		ranMu.Unlock()
	}
	s, err := cluster.Client.CoreV1().Secrets(ns).Get(ctx, release+"-requests-proxy-admin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k, err := keyring.Parse(ns+"/secret", s.Data)
	if err != nil {
		t.Fatalf("%s ended with an invalid keyring: %v", pass, err)
	}
	if got := keyring.DataKeys(s.Data); got != "active,key.v2" || k.Active != 2 {
		t.Fatalf("%s must rotate v1 -> v2: data keys %s, active v%d", pass, got, k.Active)
	}
	for name, key := range s.Data {
		if name != "active" && strings.Contains(strings.Join(outputs, "\n"), string(key)) {
			t.Fatalf("%s: key %s appears in a block's output", pass, name)
		}
	}
	t.Logf("%s: %d blocks run on Helm %d; the keyring went v1 -> v2 (%s)", pass, count, h.Major, keyring.DataKeys(s.Data))
}
