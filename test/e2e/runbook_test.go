package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/helm-rotate-key/internal/keyring"
)

const runbookPath = "docs/RUNBOOKS/requests-proxy-key-rotation.md"

// docBlock is one ```sh block of the runbook with the doc-test marker before it, if any.
type docBlock struct {
	line    int    // of the opening fence
	section string // the ## heading it is under
	code    string
	skip    string // reason, when marked "doc-test: skip — reason"
	exit    int    // expected exit code (doc-test: exit=N)
}

var markerPattern = regexp.MustCompile(`^<!-- doc-test: (.*) -->$`)

// parseRunbook returns the runbook's shell blocks in order. A marker must directly precede its block; a skip must
// say why; an unknown marker is an error, so that a typo cannot silently skip a block.
func parseRunbook(t *testing.T, text string) []docBlock {
	t.Helper()
	var blocks []docBlock
	var cur *docBlock
	marker, section := "", ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case cur != nil && l == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.code += l + "\n"
		case strings.HasPrefix(l, "## "):
			section, marker = strings.TrimPrefix(l, "## "), ""
		case markerPattern.MatchString(l):
			marker = markerPattern.FindStringSubmatch(l)[1]
		case strings.HasPrefix(l, "```"):
			b := docBlock{line: n, section: section}
			if lang := strings.TrimPrefix(l, "```"); lang != "sh" {
				t.Fatalf("%s:%d: a %q block: every command block is ```sh, so the doc test runs it", runbookPath, n, lang)
			}
			switch {
			case marker == "":
			case strings.HasPrefix(marker, "skip — ") && len(marker) > len("skip — "):
				b.skip = strings.TrimPrefix(marker, "skip — ")
			case strings.HasPrefix(marker, "exit="):
				fmt.Sscanf(marker, "exit=%d", &b.exit)
			case strings.HasPrefix(marker, "runs"):
			default:
				t.Fatalf("%s:%d: unknown doc-test marker %q (skip — REASON, exit=N, runs; NOTE)", runbookPath, n, marker)
			}
			cur, marker = &b, ""
		case strings.TrimSpace(l) != "":
			marker = "" // a marker applies to the block right after it only
		}
	}
	if cur != nil {
		t.Fatalf("%s: unterminated code block at line %d", runbookPath, cur.line)
	}
	return blocks
}

// TestRunbookIsFollowableCold executes every shell block of the operator runbook, in order, against the
// cluster-in-a-box: once for Part A (helm rotate-key) and once for Part B (kubectl by hand), each on its own
// release of the example chart installed with a 60 s token TTL (the documented setting tokenTtlSeconds). Only the
// placeholders <namespace> and <release> are substituted. Each pass must rotate v1 -> v2 and end with a valid
// keyring holding only key.v2, active v2. A block marked skip is reported with its reason; every other block runs.
func TestRunbookIsFollowableCold(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(cluster.Root, runbookPath))
	if err != nil {
		t.Fatal(err)
	}
	blocks := parseRunbook(t, string(text))
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
			case b.skip != "":
				skipped = append(skipped, fmt.Sprintf("line %d (%s)", b.line, b.skip))
			case !ran[b.line] && !t.Failed():
				t.Errorf("%s:%d: an unmarked block did not run", runbookPath, b.line)
			}
		}
		ranMu.Lock()
		defer ranMu.Unlock()
		t.Logf("runbook: %d shell blocks, %d run, %d skipped as marked: %s", len(blocks), len(ran), len(skipped), strings.Join(skipped, "; "))
	})
}

var ranMu sync.Mutex

func runRunbookPass(t *testing.T, pass string, blocks []docBlock, ran map[int]bool) {
	ctx := context.Background()
	h := newHelm(t, map[string]int{"Part A": 4, "Part B": 3}[pass])
	ns := namespace(t, "runbook-"+strings.ToLower(strings.TrimPrefix(pass, "Part ")), nil)
	const release = "requests-proxy"
	if out, err := installExample(ctx, h, ns, release, "--set", "tokenTtlSeconds=60", "--wait", "--timeout", "2m"); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	// The operator's shell: helm (this Helm, plugin installed) and kubectl on PATH, KUBECONFIG set.
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteWrapper(filepath.Join(bin, "helm")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(cluster.Tools.Kubectl, filepath.Join(bin, "kubectl")); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state.sh")
	env := []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + dir, "KUBECONFIG=" + cluster.Kubeconfig, "LANG=C.UTF-8"}
	if err := os.WriteFile(state, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var outputs []string
	count := 0
	for _, b := range blocks {
		inPass := !strings.HasPrefix(b.section, "Part ") || strings.HasPrefix(b.section, pass)
		if !inPass || b.skip != "" {
			continue
		}
		code := strings.NewReplacer("<namespace>", ns, "<release>", release).Replace(b.code)
		script := fmt.Sprintf("set -e\nsource %q\n%s\nexport -p > %q\n", state, code, state)
		cmd := exec.Command("bash", "-c", script)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		outputs = append(outputs, string(out))
		if got := exitCode(err); got != b.exit {
			t.Fatalf("%s:%d (%s, %s): exit %d, want %d\n%s\n--- output:\n%s", runbookPath, b.line, pass, b.section, got, b.exit, code, out)
		}
		count++
		ranMu.Lock()
		ran[b.line] = true
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
