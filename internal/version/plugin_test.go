package version

import (
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"
)

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", path))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// The packaging traps of docs/decisions.md, checked statically: the root plugin.yaml must stay legacy (Helm 3.22
// rejects apiVersion and then loads no plugin at all), the guard must be a Helm 4 postrenderer/v1 plugin, and both
// must carry the same version.
func TestPluginManifests(t *testing.T) {
	cli := readYAML(t, "plugin.yaml")
	guard := readYAML(t, filepath.Join("plugins", "rotate-key-guard", "plugin.yaml"))
	if _, ok := cli["apiVersion"]; ok {
		t.Fatal("plugin.yaml must not have apiVersion: Helm 3 would refuse it and every other plugin")
	}
	for _, k := range []string{"platformCommand", "platformHooks"} {
		if _, ok := cli[k]; ok {
			t.Fatalf("plugin.yaml must not use %s: it exists only since Helm 3.18", k)
		}
	}
	if cli["name"] != "rotate-key" || guard["name"] != "rotate-key-guard" {
		t.Fatalf("plugin names: %v, %v", cli["name"], guard["name"])
	}
	if guard["apiVersion"] != "v1" || guard["type"] != "postrenderer/v1" || guard["runtime"] != "subprocess" {
		t.Fatalf("guard plugin must be apiVersion v1, postrenderer/v1, subprocess: %v", guard)
	}
	if cli["version"] != guard["version"] {
		t.Fatalf("plugin versions differ: %v vs %v", cli["version"], guard["version"])
	}
}
