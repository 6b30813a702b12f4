package release

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	rspb "helm.sh/helm/v4/pkg/release/v1"
	"sigs.k8s.io/yaml"
)

// HookStepAnnotation marks the rotation hook Jobs of the rotate-key library chart (value: the step).
const HookStepAnnotation = "rotate-key.tracebloc.io/hook-step"

// RotationHooks describes the rotation hook Jobs a release's last render holds.
type RotationHooks struct {
	// Steps are the hook steps in the order of their weights (add, rollout, promote, rollout, retire).
	Steps []string
	// Secret is the keyring Secret the Jobs act on (their --secret argument).
	Secret string
}

// FindRotationHooks returns the release's rotation hook Jobs, or ok=false when its chart renders none (the
// rotation then runs locally).
func FindRotationHooks(rel *rspb.Release) (RotationHooks, bool) {
	var h RotationHooks
	type step struct {
		weight int
		name   string
	}
	var steps []step
	for _, hook := range rel.Hooks {
		if hook == nil || hook.Kind != "Job" {
			continue
		}
		var job struct {
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Args []string `json:"args"`
						} `json:"containers"`
					} `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		if yaml.Unmarshal([]byte(hook.Manifest), &job) != nil {
			continue
		}
		name, ok := job.Metadata.Annotations[HookStepAnnotation]
		if !ok || strings.HasPrefix(name, "guard-") { // the guard's hooks protect upgrades; they rotate nothing
			continue
		}
		steps = append(steps, step{hook.Weight, name})
		for _, c := range job.Spec.Template.Spec.Containers {
			if i := slices.Index(c.Args, "--secret"); i >= 0 && i+1 < len(c.Args) {
				h.Secret = c.Args[i+1]
			}
		}
	}
	slices.SortStableFunc(steps, func(a, b step) int { return a.weight - b.weight })
	for _, s := range steps {
		h.Steps = append(h.Steps, s.name)
	}
	return h, len(steps) > 0
}

// LoadLibrary loads the library chart from files laid out as "<name>/Chart.yaml", ... (the embedded copy).
func LoadLibrary(fsys fs.FS, name string) (*chart.Chart, error) {
	var files []*archive.BufferedFile
	err := fs.WalkDir(fsys, name, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files = append(files, &archive.BufferedFile{Name: strings.TrimPrefix(p, name+"/"), Data: data})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return loader.LoadFiles(files)
}

// Rebuild returns the release's stored chart with its dependencies put back: Helm stores a chart without its
// subcharts, so an upgrade "with the release's own chart" needs them again. Only the rotate-key library can be
// restored (from lib, the copy this binary carries), and only when the chart's dependency constraint accepts its
// version; any other dependency means the caller must name the chart (--chart).
func Rebuild(rel *rspb.Release, lib *chart.Chart) (*chart.Chart, error) {
	if rel.Chart == nil || rel.Chart.Metadata == nil {
		return nil, fmt.Errorf("release %s has no stored chart", rel.Name)
	}
	c := *rel.Chart
	for _, dep := range c.Metadata.Dependencies {
		if dep.Name != lib.Name() || (dep.Alias != "" && dep.Alias != dep.Name) {
			return nil, fmt.Errorf("release %s's chart depends on %q, which Helm does not keep in the release record: pass the chart with --chart (path, URL or repo/name)", rel.Name, dep.Name)
		}
		if dep.Version != "" {
			constraint, err := semver.NewConstraint(dep.Version)
			if err != nil {
				return nil, fmt.Errorf("release %s's chart: dependency %s version %q: %w", rel.Name, dep.Name, dep.Version, err)
			}
			v, err := semver.NewVersion(lib.Metadata.Version)
			if err != nil || !constraint.Check(v) {
				return nil, fmt.Errorf("release %s's chart wants %s %s, this rotate-key carries %s: pass the chart with --chart, or use a matching rotate-key", rel.Name, dep.Name, dep.Version, lib.Metadata.Version)
			}
		}
	}
	c.SetDependencies(lib)
	// chartutil.Save writes values.yaml from the chart's raw files, which the release record does not keep either:
	// without this the saved chart would lose its default values.
	if !slices.ContainsFunc(c.Raw, func(f *common.File) bool { return f.Name == "values.yaml" }) && len(c.Values) > 0 {
		data, err := yaml.Marshal(c.Values)
		if err != nil {
			return nil, fmt.Errorf("release %s's chart values: %w", rel.Name, err)
		}
		c.Raw = append(slices.Clone(c.Raw), &common.File{Name: "values.yaml", Data: data})
	}
	return &c, nil
}

// ChartFileName is the archive name chartutil.Save gives c.
func ChartFileName(c *chart.Chart) string {
	return path.Base(c.Metadata.Name + "-" + c.Metadata.Version + ".tgz")
}
