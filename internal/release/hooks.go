package release

import (
	"slices"
	"strings"

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
func FindRotationHooks(rel *Release) (RotationHooks, bool) {
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
