package release

import (
	"strings"
	"testing"

	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	rspb "helm.sh/helm/v4/pkg/release/v1"

	"github.com/tracebloc/helm-rotate-key/charts"
)

const hookJob = `apiVersion: batch/v1
kind: Job
metadata:
  name: app-rotate-key-%s
  annotations:
    rotate-key.tracebloc.io/hook-step: %s
spec:
  template:
    spec:
      containers:
        - name: rotate-key
          args: ["hook", "step", "%s", "--secret", "app-keys", "--namespace", "ns"]
`

func job(step string) string { return strings.ReplaceAll(hookJob, "%s", step) }

func TestFindRotationHooks(t *testing.T) {
	rel := &rspb.Release{Hooks: []*rspb.Hook{
		{Kind: "Job", Weight: 30, Manifest: job("promote")},
		{Kind: "Job", Weight: 10, Manifest: job("add")},
		{Kind: "Job", Weight: 5, Manifest: "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: db-migrate\n"},
		{Kind: "ConfigMap", Weight: 1, Manifest: job("not-a-job")},
	}}
	h, ok := FindRotationHooks(rel)
	if !ok || strings.Join(h.Steps, ",") != "add,promote" || h.Secret != "app-keys" {
		t.Fatalf("got %+v %v", h, ok)
	}
	if _, ok := FindRotationHooks(&rspb.Release{Hooks: rel.Hooks[2:]}); ok {
		t.Fatal("a release without rotation hook Jobs must take the local path")
	}
}

func TestRebuildPutsTheLibraryBack(t *testing.T) {
	lib, err := LoadLibrary(charts.Library, charts.LibraryName)
	if err != nil {
		t.Fatal(err)
	}
	if lib.Metadata.Type != "library" || len(lib.Templates) < 4 {
		t.Fatalf("embedded library: type %q, %d templates", lib.Metadata.Type, len(lib.Templates))
	}
	stored := func(deps ...*chart.Dependency) *rspb.Release {
		return &rspb.Release{Name: "app", Chart: &chart.Chart{Metadata: &chart.Metadata{Name: "example-app", Version: "0.1.0", APIVersion: "v2", Dependencies: deps}}}
	}
	withValues := stored(&chart.Dependency{Name: "rotate-key", Version: "0.1.x"})
	withValues.Chart.Values = map[string]any{"setting": "initial", "rotate-key": map[string]any{"rotation": map[string]any{"hooks": false}}}
	c, err := Rebuild(withValues, lib)
	if err != nil || len(c.Dependencies()) != 1 || c.Dependencies()[0].Name() != "rotate-key" {
		t.Fatalf("rebuild: %v", err)
	}
	dir := t.TempDir()
	path, err := chartutil.Save(c, dir)
	if err != nil {
		t.Fatal(err)
	}
	saved, err := loader.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if saved.Values["setting"] != "initial" || len(saved.Dependencies()) != 1 {
		t.Fatalf("the saved chart must keep the stored default values and the library: values %v, %d dependencies", saved.Values, len(saved.Dependencies()))
	}
	for name, rel := range map[string]*rspb.Release{
		"another dependency": stored(&chart.Dependency{Name: "rotate-key"}, &chart.Dependency{Name: "redis", Version: "19.x"}),
		"version mismatch":   stored(&chart.Dependency{Name: "rotate-key", Version: ">=2.0.0"}),
		"aliased":            stored(&chart.Dependency{Name: "rotate-key", Alias: "keys"}),
		"no chart":           {Name: "app"},
	} {
		if _, err := Rebuild(rel, lib); err == nil {
			t.Errorf("%s: want a refusal", name)
		} else if name != "no chart" && !strings.Contains(err.Error(), "--chart") {
			t.Errorf("%s: the refusal must name --chart: %v", name, err)
		}
	}
}
