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
	// ID names a block that "Where am I?" can send the operator to (doc-test: id=B2).
	ID string
	// EveryShell marks the block the runbook says to paste into every new shell (doc-test: every-shell).
	EveryShell bool
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
			case marker == "every-shell":
				b.EveryShell = true
			case strings.HasPrefix(marker, "id=") && len(marker) > 3:
				b.ID = strings.TrimPrefix(marker, "id=")
			default:
				return nil, fmt.Errorf("%s:%d: unknown doc-test marker %q (skip — REASON, exit=N, runs; NOTE, id=NAME, every-shell)", RunbookPath, n, marker)
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

// OperatorShell runs runbook blocks the way an operator pastes them: each into a NEW terminal — a fresh bash with
// helm and kubectl on PATH and KUBECONFIG set, no `set -e`, and nothing carried over from earlier blocks except what
// the runbook's every-shell block sets (it is pasted first, as the runbook says).
type OperatorShell struct {
	Dir   string
	Env   []string
	every string
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
	return &OperatorShell{Dir: dir, subst: strings.NewReplacer("<namespace>", ns, "<release>", release),
		Env: []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + dir, "KUBECONFIG=" + kubeconfig, "LANG=C.UTF-8", "USER=operator"}}, nil
}

// PasteFirst sets the block pasted into every new shell before the block itself.
func (s *OperatorShell) PasteFirst(b RunbookBlock) { s.every = s.subst.Replace(b.Code) }

// Fill sets `export NAME=…` in the every-shell block to value, as an operator does when a block asks for it.
func (s *OperatorShell) Fill(name, value string) error {
	line := regexp.MustCompile(`(?m)^export ` + regexp.QuoteMeta(name) + `=\S*`)
	if !line.MatchString(s.every) {
		return fmt.Errorf("the every-shell block has no line export %s=", name)
	}
	s.every = line.ReplaceAllLiteralString(s.every, "export "+name+"="+value)
	return nil
}

// Run pastes one block into a new shell and returns its combined output and exit code; err is set only when the
// shell itself could not run.
func (s *OperatorShell) Run(b RunbookBlock) (string, int, error) {
	script := s.subst.Replace(b.Code)
	if s.every != "" && !b.EveryShell {
		script = s.every + "\n" + script
	}
	cmd := exec.Command("bash", "--norc", "--noprofile", "-c", script)
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

// Runbook is a parsed runbook: its blocks in order, by id, and the every-shell block.
type Runbook struct {
	Blocks     []RunbookBlock
	EveryShell RunbookBlock
	byID       map[string]RunbookBlock
}

// LoadRunbook parses the runbook under root; it must have exactly one every-shell block and unique ids.
func LoadRunbook(root string) (*Runbook, error) {
	text, err := os.ReadFile(filepath.Join(root, RunbookPath))
	if err != nil {
		return nil, err
	}
	blocks, err := ParseRunbook(string(text))
	if err != nil {
		return nil, err
	}
	r := &Runbook{Blocks: blocks, byID: map[string]RunbookBlock{}}
	every := 0
	for _, b := range blocks {
		if b.EveryShell {
			r.EveryShell, every = b, every+1
		}
		if b.ID != "" {
			if _, dup := r.byID[b.ID]; dup {
				return nil, fmt.Errorf("%s:%d: block id %s is used twice", RunbookPath, b.Line, b.ID)
			}
			r.byID[b.ID] = b
		}
	}
	if every != 1 {
		return nil, fmt.Errorf("%s: %d blocks are marked every-shell, want 1", RunbookPath, every)
	}
	return r, nil
}

// Block returns the block with id, or an error naming the ids there are.
func (r *Runbook) Block(id string) (RunbookBlock, error) {
	b, ok := r.byID[id]
	if !ok {
		return b, fmt.Errorf("%s has no block with id %s", RunbookPath, id)
	}
	return b, nil
}

// Step is one block an operator pasted while following the runbook, with what it printed.
type Step struct {
	Block RunbookBlock
	Out   string
	Code  int
}

var (
	wherePhase = regexp.MustCompile(`(?m)^phase: +([A-Za-z]+)`)
	whereNext  = regexp.MustCompile(`(?m)^next: .*?block ([A-Z][A-Z0-9-]*[A-Z0-9])`)
)

// Follow is the interruption test's operator: after the block first, it pastes "Where am I?" (id WHERE) into a
// new shell and then the block it names, again and again, until the rotation is back in Idle. Every block must
// exit 0. It returns every block pasted, in order.
func (s *OperatorShell) Follow(r *Runbook, first string) ([]Step, error) {
	var steps []Step
	paste := func(id string) (Step, error) {
		b, err := r.Block(id)
		if err != nil {
			return Step{}, err
		}
		out, code, err := s.Run(b)
		st := Step{Block: b, Out: out, Code: code}
		steps = append(steps, st)
		if err == nil && code != 0 {
			err = fmt.Errorf("%s:%d (block %s): exit %d\n%s", RunbookPath, b.Line, id, code, out)
		}
		return st, err
	}
	if _, err := paste(first); err != nil {
		return steps, err
	}
	for i := 0; i < 30; i++ {
		where, err := paste("WHERE")
		if err != nil {
			return steps, err
		}
		phase := wherePhase.FindStringSubmatch(where.Out)
		if phase == nil {
			return steps, fmt.Errorf("the block Where am I? printed no phase:\n%s", where.Out)
		}
		if phase[1] == "Idle" {
			return steps, nil
		}
		next := whereNext.FindStringSubmatch(where.Out)
		if next == nil {
			return steps, fmt.Errorf("the block Where am I? named no block to paste in phase %s:\n%s", phase[1], where.Out)
		}
		if _, err := paste(next[1]); err != nil {
			return steps, err
		}
	}
	return steps, fmt.Errorf("the rotation did not finish after 30 blocks")
}
