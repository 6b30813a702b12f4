package e2e

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
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

// update makes TestChartGolden rewrite testdata/golden/*.yaml from the Helm 4 render:
//
//	go test -count=1 ./test/e2e/ -run TestChartGolden -update
var update = flag.Bool("update", false, "TestChartGolden: rewrite testdata/golden/*.yaml from the Helm 4 render")

// chartCase is one combination of values of the example chart.
type chartCase struct {
	name string
	args []string
}

// chartCases are the value combinations whose renders are kept as golden files and sent to the API server.
func chartCases() []chartCase {
	return []chartCase{
		{"defaults", nil},
		{"vN-naming", []string{"--set", "rotate-key.secret.naming=vN"}},
		{"env-only-consumer", []string{"--set-json", `rotate-key.consumers=[{"kind":"Deployment","name":"{{ .Release.Name }}-jobs-manager"}]`}},
		{"volume-only-consumer", []string{"--set-json", `rotate-key.consumers=[{"kind":"Deployment","name":"{{ .Release.Name }}-requests-proxy"}]`}},
		{"scheduled-with-request", []string{"--set", "rotate-key.schedule.enabled=true", "--set", "rotate-key.rotation.request=2026q4", "--set", "tokenTtlSeconds=3600"}},
		{"hooks-off", []string{"--set", "rotate-key.rotation.hooks=false", "--set", "rotate-key.guard.hooks=false"}},
		{"admission-policy", []string{"--set", "rotate-key.admissionPolicy.enabled=true", "--set-json", `rotate-key.admissionPolicy.exemptGroups=["platform-operators"]`}},
	}
}

// renderHelm is an isolated Helm of the given major without the plugin: linting and rendering do not involve it.
func renderHelm(t *testing.T, major int) *testcluster.Helm {
	t.Helper()
	h, err := cluster.NewHelm(t.TempDir(), major)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// kubeVersionArgs are the flags a client-only Helm command (template) needs to assume the cluster's Kubernetes.
// Helm 3 takes its default Kubernetes version from ldflags that only its release Makefile sets; the Helm 3 of
// tools/ is built from the module proxy, so it assumes v1.20.0, which the charts' kubeVersion ">=1.30.0-0" refuses
// ("chart requires kubeVersion: >=1.30.0-0 which is incompatible with Kubernetes v1.20.0"). It is told the
// version of the test cluster. Helm 4 reads its client-go version from the build info (v1.37) and needs nothing.
func kubeVersionArgs(major int) []string {
	if major == 3 {
		return []string{"--kube-version", cluster.Tools.Versions["K8S_VERSION"]}
	}
	return nil
}

// renderExample is the stdout of `helm template app <example chart> --namespace ns args...`. Helm's note about
// the symlinked subchart goes to stderr and is left out; on failure only stderr is shown (stdout may hold keys).
func renderExample(t *testing.T, h *testcluster.Helm, ns string, args ...string) string {
	t.Helper()
	full := append(append([]string{"template", "app", exampleChart(), "--namespace", ns}, kubeVersionArgs(h.Major)...), args...)
	stdout, stderr, err := h.RunSplit(context.Background(), full...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	return stdout
}

// normalizeRender makes a render comparable and free of key material. The value of every entry under a Secret's
// data: other than `active` (the generated key, random on every render) becomes <generated>; the replaced values
// are returned so that a caller can redact them from anything else it prints. A Secret whose data it cannot
// rewrite line by line (inline or block-scalar values, stringData) is an error rather than a leak.
//
// It also drops blank lines that end a document (before a `---` line and at the end of the render): Helm 4
// ends every manifest it split out of a template file with an empty line, Helm 3 does not. A blank line before a
// document separator carries no YAML content, so this hides no difference in the objects.
var fingerprintPattern = regexp.MustCompile(`\b(key\.)?v[0-9]+=[0-9a-f]{16}\b`)

func normalizeRender(render string) (string, []string, error) {
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

// normalized is normalizeRender that fails the test on error.
func normalized(t *testing.T, render string) (string, []string) {
	t.Helper()
	n, replaced, err := normalizeRender(render)
	if err != nil {
		t.Fatal(err)
	}
	return n, replaced
}

// redact replaces every value in secrets with <generated> in s, before s is printed.
func redact(s string, secrets []string) string {
	for _, v := range secrets {
		if v != "" {
			s = strings.ReplaceAll(s, v, "<generated>")
		}
	}
	return s
}

// shellWords is args as a shell would need them after a command, each preceded by a space.
func shellWords(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return " " + testcluster.ShellWords(args)
}

// kindDocs counts the documents of a multi-document YAML text that have a top-level kind:.
func kindDocs(render string) int {
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

// lineDiff is a unified-style diff of a and b by lines, with three lines of context.
func lineDiff(aName, bName, a, b string) string {
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

// TestChartLintStrict proves that `helm lint --strict` passes on Helm 3 and Helm 4 for the example chart (with its
// defaults, and with the scheduled rotation and vN naming) and for the rotate-key library chart on its own. Helm
// lints a library chart alone: it checks Chart.yaml, parses the templates (all partials: a library renders
// nothing by itself) and validates values.yaml against values.schema.json; the library's templates are rendered
// through the example chart. A lint with a value the schema refuses must fail, on both charts, which shows that
// the lint really validates values (and is not vacuous).
func TestChartLintStrict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	library := filepath.Join(cluster.Root, "charts", "rotate-key")
	good := []struct {
		what string
		args []string
	}{
		{"example-app", []string{exampleChart()}},
		{"rotate-key (library, alone)", []string{library}},
		{"example-app with schedule and vN naming", []string{exampleChart(), "--set", "rotate-key.schedule.enabled=true", "--set", "rotate-key.secret.naming=vN"}},
	}
	bad := []struct {
		what string
		args []string
	}{
		{"example-app with rotate-key.secret.naming=foo", []string{exampleChart(), "--set", "rotate-key.secret.naming=foo"}},
		{"rotate-key (library, alone) with secret.naming=foo", []string{library, "--set", "secret.naming=foo"}},
	}
	for _, major := range helmMajors() {
		h := renderHelm(t, major)
		for _, c := range good {
			out, err := h.Run(ctx, append([]string{"lint", "--strict"}, c.args...)...)
			if err != nil || !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
				t.Errorf("helm%d lint --strict %s: %v\n%s", major, c.what, err, out)
			}
		}
		for _, c := range bad {
			out, err := h.Run(ctx, append([]string{"lint", "--strict"}, c.args...)...)
			if exitCode(err) == 0 || !strings.Contains(out, "at '/secret/naming': value must be one of 'key.vN', 'vN'") {
				t.Errorf("helm%d lint --strict %s must fail naming /secret/naming: exit %d\n%s", major, c.what, exitCode(err), out)
			}
		}
	}
	t.Logf("helm lint --strict passed on Helm 3 and Helm 4 for %d chart/value combinations and refused %d bad ones", len(good), len(bad))
}

// TestChartGolden proves that the example chart renders exactly as testdata/golden/<case>.yaml for every value
// combination of chartCases, with Helm 4, and that Helm 3 renders the same objects. The generated key is random,
// so the renders are normalized first (normalizeRender): key data reads <generated>, and no golden file holds key
// material. Rerun with -update after an intended change of the charts, and review the diff of the golden files.
func TestChartGolden(t *testing.T) {
	t.Parallel()
	h4, h3 := renderHelm(t, 4), renderHelm(t, 3)
	var figures []string
	for _, c := range chartCases() {
		t.Run(c.name, func(t *testing.T) {
			got, keys := normalized(t, renderExample(t, h4, "golden", c.args...))
			if len(keys) != 1 {
				t.Fatalf("normalized %d generated key values, want 1 (the keyring's first key)", len(keys))
			}
			header := "# helm template app charts/example-app --namespace golden" + shellWords(c.args) + "\n" +
				"# Rendered by Helm 4; key data normalized to <generated>. Regenerate: go test ./test/e2e/ -run TestChartGolden -update\n"
			got = header + got
			path := filepath.Join("testdata", "golden", c.name+".yaml")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (create the golden files with -update)", err)
			}
			if string(want) != got {
				t.Errorf("the Helm 4 render differs from %s (normalized texts):\n%s", path, lineDiff(path, "helm4", string(want), got))
			}
			got3, keys3 := normalized(t, renderExample(t, h3, "golden", c.args...))
			if len(keys3) != 1 {
				t.Fatalf("Helm 3: normalized %d generated key values, want 1", len(keys3))
			}
			if header+got3 != got {
				t.Errorf("Helm 3 and Helm 4 render differently (normalized texts):\n%s", lineDiff("helm4", "helm3", got, header+got3))
			}
			if !t.Failed() {
				figures = append(figures, fmt.Sprintf("%s: %d objects", c.name, kindDocs(got)))
			}
		})
	}
	verb := "matched"
	if *update {
		verb = "rewrote"
	}
	t.Logf("%s %d golden files; Helm 3 rendered the same normalized output: %s", verb, len(figures), strings.Join(figures, ", "))
}

// TestChartObjectsAcceptedByAPIServer proves that every object the example chart renders, for every value
// combination of chartCases and with Helm 3 and Helm 4, is accepted by the real kube-apiserver
// (`kubectl apply --dry-run=server`: schema, validation and admission, nothing stored), one object accepted per
// rendered document. The namespace warns on Pod Security "restricted", and no pod template may draw that warning.
func TestChartObjectsAcceptedByAPIServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t, "render", map[string]string{"pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/warn-version": "latest"})
	helms := map[int]*testcluster.Helm{}
	for _, major := range helmMajors() {
		helms[major] = renderHelm(t, major)
	}
	var figures []string
	for _, c := range chartCases() {
		t.Run(c.name, func(t *testing.T) {
			counts := map[int]int{}
			for _, major := range helmMajors() {
				render := renderExample(t, helms[major], ns, c.args...)
				_, keys := normalized(t, render) // the generated key values, to redact from kubectl's output
				docs := kindDocs(render)
				cmd := exec.CommandContext(ctx, cluster.Tools.Kubectl, "--kubeconfig", cluster.Kubeconfig, "apply", "--dry-run=server", "-n", ns, "-f", "-")
				cmd.Stdin = strings.NewReader(render)
				var stdout, stderr strings.Builder
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				out, errOut := redact(stdout.String(), keys), redact(stderr.String(), keys)
				if err != nil {
					t.Fatalf("helm%d render refused by the API server: %v\n%s%s", major, err, out, errOut)
				}
				if strings.Contains(errOut, "PodSecurity") {
					t.Errorf("helm%d render draws a Pod Security warning:\n%s", major, errOut)
				}
				accepted := 0
				for _, l := range strings.Split(out, "\n") {
					if strings.HasSuffix(l, " created (server dry run)") {
						accepted++
					}
				}
				if accepted != docs || docs == 0 {
					t.Fatalf("helm%d: %d objects accepted, %d documents with a kind rendered\n%s%s", major, accepted, docs, out, errOut)
				}
				counts[major] = accepted
			}
			if counts[3] != counts[4] {
				t.Fatalf("Helm 3 rendered %d objects, Helm 4 %d", counts[3], counts[4])
			}
			if !t.Failed() {
				figures = append(figures, fmt.Sprintf("%s: %d objects accepted on Helm 3 and Helm 4", c.name, counts[4]))
			}
		})
	}
	t.Logf("kube-apiserver %s (server dry run, namespace %s):\n  %s", cluster.Tools.Versions["K8S_VERSION"], ns, strings.Join(figures, "\n  "))
}

// TestChartSchemaRefusesBadValues proves that the charts' values.schema.json files stop a bad value before any
// template runs, on Helm 3 and Helm 4: `helm template` exits non-zero, renders nothing to stdout, and its error
// names the offending value path (and, where Helm prints it, the value).
func TestChartSchemaRefusesBadValues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		args []string
		want []string // substrings of the error, as Helm 3.22 and 4.3 print it
	}{
		{[]string{"--set", "rotate-key.secret.naming=foo"}, []string{"rotate-key:", "at '/secret/naming': value must be one of 'key.vN', 'vN'"}},
		{[]string{"--set", "tokenTtlSeconds=30"}, []string{"example-app:", "at '/tokenTtlSeconds': minimum: got 30, want 60"}},
		{[]string{"--set-json", `rotate-key.consumers=[{"kind":"Pod","name":"x"}]`}, []string{"rotate-key:", "at '/consumers/0/kind': value must be one of 'Deployment', 'StatefulSet', 'DaemonSet'"}},
		{[]string{"--set", "rotate-key.rotation.request=bad id!"}, []string{"rotate-key:", "at '/rotation/request': 'bad id!' does not match pattern"}},
		{[]string{"--set", "rotate-key.ttlSeconds=59"}, []string{"rotate-key:", "at '/ttlSeconds': minimum: got 59, want 60"}},
		{[]string{"--set", "rotate-key.rotationInterval=soon"}, []string{"rotate-key:", "at '/rotationInterval': 'soon' does not match pattern"}},
		{[]string{"--set", "rotate-key.unknown=1"}, []string{"rotate-key:", "additional properties 'unknown' not allowed"}},
	}
	for _, major := range helmMajors() {
		h := renderHelm(t, major)
		for _, c := range cases {
			args := append(append([]string{"template", "app", exampleChart(), "--namespace", "golden"}, kubeVersionArgs(major)...), c.args...)
			stdout, stderr, err := h.RunSplit(ctx, args...)
			if exitCode(err) == 0 {
				t.Errorf("helm%d template %s: accepted, want a schema error", major, strings.Join(c.args, " "))
				continue
			}
			if stdout != "" {
				t.Errorf("helm%d template %s: failed but rendered %d bytes to stdout", major, strings.Join(c.args, " "), len(stdout))
			}
			for _, w := range append([]string{"values don't meet the specifications of the schema"}, c.want...) {
				if !strings.Contains(stderr, w) {
					t.Errorf("helm%d template %s: error lacks %q:\n%s", major, strings.Join(c.args, " "), w, stderr)
				}
			}
		}
	}
	t.Logf("%d bad values refused by the schema on Helm 3 and Helm 4, each error naming its value path", len(cases))
}
