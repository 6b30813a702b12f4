package release

import (
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"

	"github.com/Masterminds/semver/v3"
	"sigs.k8s.io/yaml"
)

// Rebuild returns the files of the release's stored chart with its dependencies put back, as paths relative to
// the chart's directory: Helm stores a chart without its subcharts (and without the raw values.yaml), so an upgrade
// "with the release's own chart" needs them again. Only the rotate-key library can be restored — from lib, the
// copy this binary carries, whose files are under libName/ — and only when the chart's dependency constraint
// accepts its version; any other dependency means the caller must name the chart (--chart).
func Rebuild(rel *Release, lib fs.FS, libName string) (map[string][]byte, error) {
	if rel.Chart == nil || rel.Chart.Metadata == nil {
		return nil, fmt.Errorf("release %s has no stored chart", rel.Name)
	}
	c := rel.Chart
	libFiles, libVersion, err := libraryFiles(lib, libName)
	if err != nil {
		return nil, fmt.Errorf("the embedded %s library chart: %w", libName, err)
	}
	for _, dep := range c.Metadata.Dependencies {
		if dep.Name != libName || (dep.Alias != "" && dep.Alias != dep.Name) {
			return nil, fmt.Errorf("release %s's chart depends on %q, which Helm does not keep in the release record: pass the chart with --chart (path, URL or repo/name)", rel.Name, dep.Name)
		}
		if dep.Version != "" {
			constraint, err := semver.NewConstraint(dep.Version)
			if err != nil {
				return nil, fmt.Errorf("release %s's chart: dependency %s version %q: %w", rel.Name, dep.Name, dep.Version, err)
			}
			v, err := semver.NewVersion(libVersion)
			if err != nil || !constraint.Check(v) {
				return nil, fmt.Errorf("release %s's chart wants %s %s, this rotate-key carries %s: pass the chart with --chart, or use a matching rotate-key", rel.Name, dep.Name, dep.Version, libVersion)
			}
		}
	}
	chartYAML, err := yaml.JSONToYAML(c.MetadataJSON)
	if err != nil {
		return nil, fmt.Errorf("release %s's stored Chart.yaml: %w", rel.Name, err)
	}
	files := map[string][]byte{"Chart.yaml": chartYAML}
	add := func(name string, data []byte) error {
		if !filepath.IsLocal(name) || strings.Contains(name, "\\") {
			return fmt.Errorf("release %s's stored chart holds a file named %q, outside the chart: refusing to write it; pass the chart with --chart", rel.Name, name)
		}
		files[path.Clean(name)] = data
		return nil
	}
	for _, group := range [][]*File{c.Templates, c.Files} {
		for _, f := range group {
			if f == nil {
				continue
			}
			if err := add(f.Name, f.Data); err != nil {
				return nil, err
			}
		}
	}
	if len(c.Values) > 0 {
		data, err := yaml.Marshal(c.Values)
		if err != nil {
			return nil, fmt.Errorf("release %s's chart values: %w", rel.Name, err)
		}
		files["values.yaml"] = data
	}
	if len(c.Schema) > 0 {
		files["values.schema.json"] = c.Schema
	}
	if len(c.Metadata.Dependencies) > 0 {
		for name, data := range libFiles {
			files[path.Join("charts", libName, name)] = data
		}
	}
	return files, nil
}

// libraryFiles reads the library chart's files (relative to its directory) and its version from its Chart.yaml.
func libraryFiles(lib fs.FS, name string) (map[string][]byte, string, error) {
	files := map[string][]byte{}
	err := fs.WalkDir(lib, name, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(lib, p)
		if err != nil {
			return err
		}
		files[strings.TrimPrefix(p, name+"/")] = data
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	var meta Metadata
	if err := yaml.Unmarshal(files["Chart.yaml"], &meta); err != nil || meta.Version == "" {
		return nil, "", fmt.Errorf("no readable Chart.yaml with a version (%v)", err)
	}
	return files, meta.Version, nil
}
