package chart

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/tracebloc/helm-rotate-key/charts"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// update makes TestChartGolden rewrite testdata/golden/*.yaml from the Helm 4 render:
//
//	go test -count=1 ./test/chart/ -run TestChartGolden -update
var update = flag.Bool("update", false, "TestChartGolden: rewrite testdata/golden/*.yaml from the Helm 4 render")

var (
	root  string
	tools testcluster.Tools
)

// TestMain finds the repository and the built Helm CLIs (make tools); no cluster is started.
func TestMain(m *testing.M) {
	var err error
	if root, err = testcluster.RepoRoot(); err == nil {
		tools, err = testcluster.FindTools(root)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func exampleChart() string { return filepath.Join(root, "charts", "example-app") }

// TestChartLintStrict proves that `helm lint --strict` passes on Helm 3 and Helm 4 for the example chart (with its
// defaults, and with the scheduled rotation and vN naming) and for the rotate-key library chart on its own. Helm
// lints a library chart alone: it checks Chart.yaml, parses the templates (all partials: a library renders
// nothing by itself) and validates values.yaml against values.schema.json; the library's templates are rendered
// through the example chart. A lint with a value the schema refuses must fail, on both charts, which shows that
// the lint really validates values (and is not vacuous). (Moved from test/e2e: it needs Helm, not the cluster.)
func TestChartLintStrict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	library := filepath.Join(root, "charts", "rotate-key")
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
	for _, major := range []int{3, 4} {
		h := NewHelm(t, tools, major)
		for _, c := range good {
			out, errOut, err := h.Run(ctx, append([]string{"lint", "--strict"}, c.args...)...)
			if err != nil || !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
				t.Errorf("helm%d lint --strict %s: %v\n%s%s", major, c.what, err, out, errOut)
			}
		}
		for _, c := range bad {
			out, errOut, err := h.Run(ctx, append([]string{"lint", "--strict"}, c.args...)...)
			if ExitCode(err) == 0 || !strings.Contains(out+errOut, "at '/secret/naming': value must be one of 'key.vN', 'vN'") {
				t.Errorf("helm%d lint --strict %s must fail naming /secret/naming: exit %d\n%s%s", major, c.what, ExitCode(err), out, errOut)
			}
		}
	}
	t.Logf("helm lint --strict passed on Helm 3 and Helm 4 for %d chart/value combinations and refused %d bad ones", len(good), len(bad))
}

// TestChartGolden proves that the example chart renders exactly as testdata/golden/<case>.yaml for every value
// combination of Cases, with Helm 4, and that Helm 3 renders the same objects. The generated key is random, so the
// renders are normalized first (Normalize): key data reads <generated>, and no golden file holds key material.
// Rerun with -update after an intended change of the charts, and review the diff of the golden files. (Moved from
// test/e2e with its golden files.)
func TestChartGolden(t *testing.T) {
	t.Parallel()
	h4, h3 := NewHelm(t, tools, 4), NewHelm(t, tools, 3)
	var figures []string
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) {
			got, keys, err := Normalize(h4.Template(t, exampleChart(), "golden", c.Args...))
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 1 {
				t.Fatalf("normalized %d generated key values, want 1 (the keyring's first key)", len(keys))
			}
			words := ""
			if len(c.Args) > 0 {
				words = " " + testcluster.ShellWords(c.Args)
			}
			header := "# helm template app charts/example-app --namespace golden" + words + "\n" +
				"# Rendered by Helm 4; key data normalized to <generated>. Regenerate: go test ./test/chart/ -run TestChartGolden -update\n"
			got = header + got
			path := filepath.Join("testdata", "golden", c.Name+".yaml")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (create the golden files with -update)", err)
			}
			if string(want) != got {
				t.Errorf("the Helm 4 render differs from %s (normalized texts):\n%s", path, LineDiff(path, "helm4", string(want), got))
			}
			got3, keys3, err := Normalize(h3.Template(t, exampleChart(), "golden", c.Args...))
			if err != nil {
				t.Fatal(err)
			}
			if len(keys3) != 1 {
				t.Fatalf("Helm 3: normalized %d generated key values, want 1", len(keys3))
			}
			if header+got3 != got {
				t.Errorf("Helm 3 and Helm 4 render differently (normalized texts):\n%s", LineDiff("helm4", "helm3", got, header+got3))
			}
			if !t.Failed() {
				figures = append(figures, fmt.Sprintf("%s: %d objects", c.Name, KindDocs(got)))
			}
		})
	}
	t.Logf("%d golden files matched; Helm 3 rendered the same normalized output: %s", len(figures), strings.Join(figures, ", "))
}

// TestChartSchemaRefusesBadValues proves that the charts' values.schema.json files stop a bad value before any
// template runs, on Helm 3 and Helm 4: `helm template` exits non-zero, renders nothing to stdout, and its error
// names the offending value path (and, where Helm prints it, the value). (Moved from test/e2e.)
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
		{[]string{"--set", "rotate-key.image.digest=latest"}, []string{"rotate-key:", "at '/image/digest': 'latest' does not match pattern"}},
	}
	for _, major := range []int{3, 4} {
		h := NewHelm(t, tools, major)
		for _, c := range cases {
			args := append(append([]string{"template", "app", exampleChart(), "--namespace", "golden"}, KubeVersionArgs(tools, major)...), c.args...)
			stdout, stderr, err := h.Run(ctx, args...)
			if ExitCode(err) == 0 {
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

// The chart's post-upgrade Jobs, in the order of their hook weights, are rotation.ChartHooks(): the transition
// table decides which Job performs which step, and the chart must run them in the table's order.
func TestHookJobsFollowTheTransitionTable(t *testing.T) {
	render := NewHelm(t, tools, 4).Template(t, exampleChart(), "golden", "--set", "rotate-key.rotation.request=2026q4")
	type job struct {
		weight int
		step   string
	}
	var jobs []job
	for _, doc := range strings.Split(render, "\n---\n") {
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		if yaml.Unmarshal([]byte(doc), &obj) != nil || obj.Kind != "Job" || obj.Metadata.Annotations["helm.sh/hook"] != "post-upgrade" {
			continue
		}
		var w int
		fmt.Sscan(obj.Metadata.Annotations["helm.sh/hook-weight"], &w)
		jobs = append(jobs, job{w, obj.Metadata.Annotations["rotate-key.tracebloc.io/hook-step"]})
	}
	for i := range jobs { // insertion sort by weight: a handful of Jobs
		for j := i; j > 0 && jobs[j].weight < jobs[j-1].weight; j-- {
			jobs[j], jobs[j-1] = jobs[j-1], jobs[j]
		}
	}
	var got []string
	for _, j := range jobs {
		got = append(got, j.step)
	}
	want := rotation.ChartHooks()
	if strings.Join(got, " ") != strings.Join(want, " ") || len(want) < 5 {
		t.Fatalf("the chart's post-upgrade Jobs run %v, the transition table's order is %v", got, want)
	}
	t.Logf("the chart runs its %d post-upgrade Jobs in the table's order: %s", len(got), strings.Join(got, ", "))
}

// The chart refuses a rotation.request the CLI would refuse, with the same pattern: the template's regexMatch and
// values.schema.json's pattern are rotation.RequestPattern.
func TestRequestPatternIsTheChartsPattern(t *testing.T) {
	hooks, err := charts.Library.ReadFile(charts.LibraryName + "/templates/_hooks.tpl")
	if err != nil {
		t.Fatal(err)
	}
	schema, err := charts.Library.ReadFile(charts.LibraryName + "/values.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`regexMatch "([^"]+)" \$request`).FindSubmatch(hooks)
	if m == nil || string(m[1]) != rotation.RequestPattern.String() {
		t.Fatalf("the chart's hooks check the request with %q, the CLI with %q", m, rotation.RequestPattern)
	}
	// The schema also accepts "" (no request): its pattern is "^$|" + the CLI's.
	if !strings.Contains(string(schema), `"pattern": "^$|`+rotation.RequestPattern.String()+`"`) {
		t.Fatalf("values.schema.json does not check rotation.request with %s", rotation.RequestPattern)
	}
	for _, id := range []string{"2026q4", "a", "x.y_z-1", "bad id!", "-lead", strings.Repeat("a", 64)} {
		out, _, err := NewHelm(t, tools, 4).Run(context.Background(), "template", "app", exampleChart(), "--set", "rotate-key.rotation.request="+id)
		if accepted := err == nil && out != ""; accepted != rotation.ValidRequest(id) {
			t.Errorf("request %q: the chart accepts=%v, the CLI accepts=%v", id, accepted, rotation.ValidRequest(id))
		}
	}
}
