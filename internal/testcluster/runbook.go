package testcluster

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// RunbookPath is the operator runbook, relative to the repository root. Its ```sh blocks are executed by the e2e
// test TestRunbookIsFollowableCold, and its Part B (kubectl by hand) is what `make bench` counts the API requests
// of a manual rotation with.
const RunbookPath = "docs/RUNBOOKS/requests-proxy-key-rotation.md"

// RunbookBlock is one ```sh block of a runbook with the doc-test marker before it, if any.
type RunbookBlock struct {
	Line    int    // of the opening fence
	Section string // the ## heading it is under
	Code    string
	Skip    string // reason, when marked "doc-test: skip — reason"
	Exit    int    // expected exit code (doc-test: exit=N)
}

// InPass reports whether the block belongs to a pass ("Part A", "Part B"): its own part, or no part at all
// (the shared preparation every pass runs).
func (b RunbookBlock) InPass(pass string) bool {
	return !strings.HasPrefix(b.Section, "Part ") || strings.HasPrefix(b.Section, pass)
}

var markerPattern = regexp.MustCompile(`^<!-- doc-test: (.*) -->$`)

// ParseRunbook returns the runbook's shell blocks in order. A marker must directly precede its block; a skip must
// say why; an unknown marker or a block that is not ```sh is an error, so that a typo cannot silently skip a block.
func ParseRunbook(text string) ([]RunbookBlock, error) {
	var blocks []RunbookBlock
	var cur *RunbookBlock
	marker, section := "", ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case cur != nil && l == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.Code += l + "\n"
		case strings.HasPrefix(l, "## "):
			section, marker = strings.TrimPrefix(l, "## "), ""
		case markerPattern.MatchString(l):
			marker = markerPattern.FindStringSubmatch(l)[1]
		case strings.HasPrefix(l, "```"):
			b := RunbookBlock{Line: n, Section: section}
			if lang := strings.TrimPrefix(l, "```"); lang != "sh" {
				return nil, fmt.Errorf("%s:%d: a %q block: every command block is ```sh, so the doc test runs it", RunbookPath, n, lang)
			}
			switch {
			case marker == "":
			case strings.HasPrefix(marker, "skip — ") && len(marker) > len("skip — "):
				b.Skip = strings.TrimPrefix(marker, "skip — ")
			case strings.HasPrefix(marker, "exit="):
				fmt.Sscanf(marker, "exit=%d", &b.Exit)
			case strings.HasPrefix(marker, "runs"):
			default:
				return nil, fmt.Errorf("%s:%d: unknown doc-test marker %q (skip — REASON, exit=N, runs; NOTE)", RunbookPath, n, marker)
			}
			cur, marker = &b, ""
		case strings.TrimSpace(l) != "":
			marker = "" // a marker applies to the block right after it only
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("%s: unterminated code block at line %d", RunbookPath, cur.Line)
	}
	return blocks, nil
}

// OperatorShell runs runbook blocks the way an operator pastes them into one terminal: helm and kubectl on PATH,
// KUBECONFIG set, and the variables one block exports seen by the next.
type OperatorShell struct {
	Dir   string
	Env   []string
	state string
	subst *strings.Replacer
}

// NewOperatorShell prepares a shell in dir whose helm is h (plugin installed) and whose kubectl is kubectl (the
// real binary, or a wrapper that counts its requests); <namespace> and <release> in a block become ns and release.
func NewOperatorShell(dir string, h *Helm, kubectl, kubeconfig, ns, release string) (*OperatorShell, error) {
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return nil, err
	}
	if err := h.WriteWrapper(filepath.Join(bin, "helm")); err != nil {
		return nil, err
	}
	if err := os.Symlink(kubectl, filepath.Join(bin, "kubectl")); err != nil {
		return nil, err
	}
	s := &OperatorShell{Dir: dir, state: filepath.Join(dir, "state.sh"), subst: strings.NewReplacer("<namespace>", ns, "<release>", release),
		Env: []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + dir, "KUBECONFIG=" + kubeconfig, "LANG=C.UTF-8"}}
	if err := os.WriteFile(s.state, nil, 0o600); err != nil {
		return nil, err
	}
	return s, nil
}

// Run executes one block (set -e) and returns its combined output and exit code; err is set only when the shell
// itself could not run.
func (s *OperatorShell) Run(b RunbookBlock) (string, int, error) {
	script := fmt.Sprintf("set -e\nsource %q\n%s\nexport -p > %q\n", s.state, s.subst.Replace(b.Code), s.state)
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir, cmd.Env = s.Dir, s.Env
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		return string(out), exitErr.ExitCode(), nil
	case err != nil:
		return string(out), -1, err
	}
	return string(out), 0, nil
}

// Substituted is the block's code as the shell runs it.
func (s *OperatorShell) Substituted(b RunbookBlock) string { return s.subst.Replace(b.Code) }
