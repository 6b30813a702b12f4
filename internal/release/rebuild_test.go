package release

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/v2/loader"

	"github.com/tracebloc/helm-rotate-key/charts"
)

// stored is a release record as Helm writes it, decoded by Decode's own path (JSON), with the given dependencies.
func stored(t *testing.T, deps string, extra string) *Release {
	t.Helper()
	js := `{"name":"app","chart":{"metadata":{"name":"example-app","version":"0.1.0","apiVersion":"v2","description":"the example",` +
		`"annotations":{"team":"keys"},"dependencies":[` + deps + `]},` +
		`"templates":[{"name":"templates/cm.yaml","data":"` + b64("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  setting: {{ .Values.setting }}\n") + `"}],` +
		`"files":[{"name":"README.md","data":"` + b64("# example\n") + `"}],` +
		`"schema":"` + b64(`{"type":"object"}`) + `",` +
		`"values":{"setting":"initial","rotate-key":{"rotation":{"hooks":false}}}` + extra + `}}`
	var rel Release
	if err := json.Unmarshal([]byte(js), &rel); err != nil {
		t.Fatal(err)
	}
	return &rel
}

func b64(s string) string {
	out, _ := json.Marshal([]byte(s))
	return strings.Trim(string(out), `"`)
}

// TestRebuildPutsTheLibraryBack proves the rebuilt files are a chart Helm itself loads, with the stored metadata,
// default values, schema, files and the embedded library as its dependency.
func TestRebuildPutsTheLibraryBack(t *testing.T) {
	files, err := Rebuild(stored(t, `{"name":"rotate-key","version":"0.1.x","repository":"file://../rotate-key"}`, ""), charts.Library, charts.LibraryName)
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "example-app")
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := loader.LoadDir(dir)
	if err != nil {
		t.Fatalf("Helm cannot load the rebuilt chart: %v", err)
	}
	if c.Metadata.Name != "example-app" || c.Metadata.Description != "the example" || c.Metadata.Annotations["team"] != "keys" ||
		len(c.Metadata.Dependencies) != 1 || c.Metadata.Dependencies[0].Repository != "file://../rotate-key" {
		t.Errorf("Chart.yaml not kept: %+v", c.Metadata)
	}
	if c.Values["setting"] != "initial" || string(c.Schema) != `{"type":"object"}` || len(c.Templates) != 1 || len(c.Files) != 1 {
		t.Errorf("values %v, schema %q, %d templates, %d files", c.Values, c.Schema, len(c.Templates), len(c.Files))
	}
	deps := c.Dependencies()
	if len(deps) != 1 || deps[0].Name() != "rotate-key" || deps[0].Metadata.Type != "library" || len(deps[0].Templates) < 4 {
		t.Fatalf("the embedded library is not the dependency: %d dependencies", len(deps))
	}
}

func TestRebuildRefusesWhatItCannotRestore(t *testing.T) {
	for name, rel := range map[string]*Release{
		"another dependency": stored(t, `{"name":"rotate-key"},{"name":"redis","version":"19.x"}`, ""),
		"version mismatch":   stored(t, `{"name":"rotate-key","version":">=2.0.0"}`, ""),
		"aliased":            stored(t, `{"name":"rotate-key","alias":"keys"}`, ""),
		"file outside":       stored(t, `{"name":"rotate-key"}`, `,"files":[{"name":"../../etc/cron.d/x","data":""}]`),
		"no chart":           {Name: "app"},
	} {
		_, err := Rebuild(rel, charts.Library, charts.LibraryName)
		switch {
		case err == nil:
			t.Errorf("%s: want a refusal", name)
		case name != "no chart" && !strings.Contains(err.Error(), "--chart"):
			t.Errorf("%s: the refusal must name --chart: %v", name, err)
		}
	}
}
