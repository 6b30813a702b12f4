// Package chart renders the example chart (and with it the rotate-key library chart) with the real Helm 3 and
// Helm 4 CLIs for the chart tests: the value combinations kept as golden files, and the normalization that makes a
// render comparable and free of key material. It needs the built tools (make tools), not the cluster-in-a-box;
// test/e2e uses the same cases to send the renders to the API server.
package chart

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tracebloc/helm-rotate-key/internal/guard"
	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// Case is one combination of values of the example chart.
type Case struct {
	Name string
	Args []string
}

// Cases are the value combinations whose renders are kept as golden files and sent to the API server.
func Cases() []Case {
	return []Case{
		{"defaults", nil},
		{"vN-naming", []string{"--set", "rotate-key.secret.naming=vN"}},
		{"env-only-consumer", []string{"--set-json", `rotate-key.consumers=[{"kind":"Deployment","name":"{{ .Release.Name }}-jobs-manager"}]`}},
		{"volume-only-consumer", []string{"--set-json", `rotate-key.consumers=[{"kind":"Deployment","name":"{{ .Release.Name }}-requests-proxy"}]`}},
		{"scheduled-with-request", []string{"--set", "rotate-key.schedule.enabled=true", "--set", "rotate-key.rotation.request=2026q4", "--set", "tokenTtlSeconds=3600"}},
		{"hooks-off", []string{"--set", "rotate-key.rotation.hooks=false", "--set", "rotate-key.guard.hooks=false"}},
		{"image-by-digest", []string{"--set", "rotate-key.image.digest=sha256:" + strings.Repeat("0123456789abcdef", 4), "--set", "rotate-key.rotation.hooks=false"}},
		{"admission-policy", []string{"--set", "rotate-key.admissionPolicy.enabled=true", "--set-json", `rotate-key.admissionPolicy.exemptGroups=["platform-operators"]`}},
	}
}

// Helm is one Helm CLI with isolated HELM_* folders and no plugin: linting and rendering need none.
type Helm struct {
	Major int
	Bin   string
	Env   []string
	tools testcluster.Tools
}

// NewHelm is an isolated Helm of the given major from the built tools.
func NewHelm(t testing.TB, tools testcluster.Tools, major int) *Helm {
	t.Helper()
	bin := tools.Helm3
	if major == 4 {
		bin = tools.Helm4
	}
	home := t.TempDir()
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"), "HELM_DATA_HOME=" + filepath.Join(home, "data")}
	return &Helm{Major: major, Bin: bin, Env: env, tools: tools}
}

// Run runs helm with args and returns stdout and stderr apart (stdout may hold keys: never print it whole).
func (h *Helm) Run(ctx context.Context, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, h.Bin, args...)
	cmd.Env = h.Env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// Template is the stdout of `helm template app CHART --namespace ns args...`. Helm's note about the symlinked
// subchart goes to stderr and is left out; on failure only stderr is shown (stdout may hold keys).
func (h *Helm) Template(t testing.TB, chart, ns string, args ...string) string {
	t.Helper()
	full := append(append([]string{"template", "app", chart, "--namespace", ns}, KubeVersionArgs(h.tools, h.Major)...), args...)
	stdout, stderr, err := h.Run(context.Background(), full...)
	if err != nil {
		t.Fatalf("helm%d %v: %v\n%s", h.Major, strings.Join(full, " "), err, stderr)
	}
	return stdout
}

// KubeVersionArgs are the flags a client-only Helm command (template) needs to assume the cluster's Kubernetes.
// Helm 3 takes its default Kubernetes version from ldflags that only its release Makefile sets; the Helm 3 of
// tools/ is built from the module proxy, so it assumes v1.20.0, which the charts' kubeVersion ">=1.30.0-0" refuses
// ("chart requires kubeVersion: >=1.30.0-0 which is incompatible with Kubernetes v1.20.0"). It is told the
// version of the test cluster. Helm 4 reads its client-go version from the build info (v1.37) and needs nothing.
func KubeVersionArgs(tools testcluster.Tools, major int) []string {
	if major == 3 {
		return []string{"--kube-version", tools.Versions["K8S_VERSION"]}
	}
	return nil
}

// Normalize makes a render comparable and free of key material. The value of every entry under a Secret's
// data: other than `active` (the generated key, random on every render) becomes <generated>; the replaced values
// are returned so that a caller can redact them from anything else it prints. A Secret whose data it cannot
// rewrite line by line (inline or block-scalar values, stringData) is an error rather than a leak.
//
// It also drops blank lines that end a document (before a `---` line and at the end of the render): Helm 4
// ends every manifest it split out of a template file with an empty line, Helm 3 does not. A blank line before a
// document separator carries no YAML content, so this hides no difference in the objects.
var fingerprintPattern = regexp.MustCompile(`\b(key\.)?v[0-9]+=[0-9a-f]{16}\b`)

func Normalize(render string) (string, []string, error) {
	trimBlankTail := func(lines []string) []string {
		for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
			lines = lines[:len(lines)-1]
		}
		return lines
	}
	var lines []string
	for _, l := range strings.Split(render, "\n") {
		if l == "---" {
			lines = trimBlankTail(lines)
		}
		lines = append(lines, l)
	}
	lines = trimBlankTail(lines)
	var replaced []string
	start := 0
	for i := 0; i <= len(lines); i++ {
		if i == len(lines) || lines[i] == "---" {
			if err := redactSecretData(lines[start:i], &replaced); err != nil {
				return "", nil, err
			}
			start = i + 1
		}
	}
	normalized := strings.Join(lines, "\n") + "\n"
	// The guard hooks describe each generated key by its fingerprint: it must be the fingerprint of the key the
	// same render put in the Secret (computed once per render), and is then normalized like the key.
	fingerprints := map[string]bool{}
	for _, v := range replaced {
		if b, err := base64.StdEncoding.DecodeString(v); err == nil {
			fingerprints[guard.Fingerprint(b)] = true
		}
	}
	var mismatch error
	normalized = fingerprintPattern.ReplaceAllStringFunc(normalized, func(m string) string {
		name, fp, _ := strings.Cut(m, "=")
		if !fingerprints[fp] {
			mismatch = fmt.Errorf("the guard hook describes %s by a fingerprint of no key in the rendered Secret", name)
		}
		return name + "=<fingerprint>"
	})
	if mismatch != nil {
		return "", nil, mismatch
	}
	for _, v := range replaced {
		if strings.Contains(normalized, v) {
			return "", nil, errors.New("generated key data is still in the normalized render")
		}
	}
	return normalized, replaced, nil
}

// redactSecretData rewrites, in place, the data entries of doc (the lines of one YAML document) if it is a Secret.
// Errors name keys only, never values.
func redactSecretData(doc []string, replaced *[]string) error {
	secret := false
	for _, l := range doc {
		if k, v, ok := strings.Cut(l, ":"); ok && k == "kind" && strings.Trim(strings.TrimSpace(v), `"'`) == "Secret" {
			secret = true
		}
	}
	if !secret {
		return nil
	}
	for i := 0; i < len(doc); i++ {
		field, rest, ok := strings.Cut(doc[i], ":")
		if !ok || (field != "data" && field != "stringData") {
			continue
		}
		if field == "stringData" {
			return errors.New("a Secret has stringData: the normalization handles data: only")
		}
		if r := strings.TrimSpace(rest); r != "" && r != "{}" {
			return errors.New("a Secret's data: is not a block mapping: cannot normalize it line by line")
		}
		indent := ""
		for i++; i < len(doc); i++ {
			l := doc[i]
			trimmed := strings.TrimLeft(l, " ")
			if trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			if trimmed == l { // back at column 0: the end of data:
				i--
				break
			}
			ind := l[:len(l)-len(trimmed)]
			if indent == "" {
				indent = ind
			}
			key, value, ok := strings.Cut(trimmed, ":")
			if ind != indent || !ok {
				return fmt.Errorf("a Secret's data: has a line that is not `key: value` after %q", key)
			}
			value = strings.TrimSpace(value)
			if strings.Trim(key, `"'`) == "active" {
				continue
			}
			if value == "" || strings.ContainsAny(value[:1], "|>") {
				return fmt.Errorf("a Secret's data entry %s is not a single-line value: cannot normalize it", key)
			}
			*replaced = append(*replaced, value)
			doc[i] = indent + key + ": <generated>"
		}
	}
	return nil
}

// Redact replaces every value in secrets with <generated> in s, before s is printed.
func Redact(s string, secrets []string) string {
	for _, v := range secrets {
		if v != "" {
			s = strings.ReplaceAll(s, v, "<generated>")
		}
	}
	return s
}

// KindDocs counts the documents of a multi-document YAML text that have a top-level kind:.
func KindDocs(render string) int {
	n, has := 0, false
	for _, l := range strings.Split(render, "\n") {
		if l == "---" {
			has = false
			continue
		}
		if strings.HasPrefix(l, "kind:") && !has {
			has = true
			n++
		}
	}
	return n
}

// LineDiff is a unified-style diff of a and b by lines, with three lines of context.
func LineDiff(aName, bName, a, b string) string {
	al := strings.Split(strings.TrimSuffix(a, "\n"), "\n")
	bl := strings.Split(strings.TrimSuffix(b, "\n"), "\n")
	n, m := len(al), len(bl)
	lcs := make([][]int, n+1) // lcs[i][j]: longest common subsequence of al[i:] and bl[j:]
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if al[i] == bl[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		kind byte
		line string
		a, b int
	}
	var ops []op
	for i, j := 0, 0; i < n || j < m; {
		switch {
		case i < n && j < m && al[i] == bl[j]:
			ops = append(ops, op{' ', al[i], i, j})
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', al[i], i, j})
			i++
		default:
			ops = append(ops, op{'+', bl[j], i, j})
			j++
		}
	}
	const around = 3
	var b2 strings.Builder
	fmt.Fprintf(&b2, "--- %s\n+++ %s\n", aName, bName)
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			k++
			continue
		}
		// A hunk: from `around` lines before this change to `around` lines after the last change that is at most
		// 2*around unchanged lines away from the next.
		start, end := max(0, k-around), k
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*around {
				break
			}
			end = run
		}
		stop := min(len(ops), end+around)
		var na, nb int
		for _, o := range ops[start:stop] {
			if o.kind != '+' {
				na++
			}
			if o.kind != '-' {
				nb++
			}
		}
		fmt.Fprintf(&b2, "@@ -%d,%d +%d,%d @@\n", ops[start].a+1, na, ops[start].b+1, nb)
		for _, o := range ops[start:stop] {
			fmt.Fprintf(&b2, "%c%s\n", o.kind, o.line)
		}
		k = stop
	}
	return b2.String()
}

// ExitCode is the exit code of a finished command's error: 0 for none, -1 when it did not run.
func ExitCode(err error) int {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
