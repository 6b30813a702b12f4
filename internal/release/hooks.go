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
	var steps []libraryJob
	for _, j := range hookJobs(rel) {
		if strings.HasPrefix(j.step, "guard-") { // the guard's hooks protect upgrades; they rotate nothing
			continue
		}
		steps = append(steps, j)
		if j.secret != "" {
			h.Secret = j.secret
		}
	}
	slices.SortStableFunc(steps, func(a, b libraryJob) int { return a.weight - b.weight })
	for _, s := range steps {
		h.Steps = append(h.Steps, s.step)
	}
	return h, len(steps) > 0
}

// GuardHooks returns the Helm operations ("upgrade", "rollback") whose pre-hook runs the keyring guard in the
// release's last render: the layer that catches upgrades run without the post-renderer, and rollbacks.
func GuardHooks(rel *Release) []string {
	var ops []string
	for _, j := range hookJobs(rel) {
		if op, ok := strings.CutPrefix(j.step, "guard-"); ok && !slices.Contains(ops, op) {
			ops = append(ops, op)
		}
	}
	slices.Sort(ops)
	return ops
}

// libraryJob is one of the library's hook Jobs: its step annotation, weight and --secret argument.
type libraryJob struct {
	weight       int
	step, secret string
}

// hookJobs parses the release's hook Jobs that carry HookStepAnnotation.
func hookJobs(rel *Release) []libraryJob {
	var out []libraryJob
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
		if !ok {
			continue
		}
		j := libraryJob{weight: hook.Weight, step: name}
		for _, c := range job.Spec.Template.Spec.Containers {
			if i := slices.Index(c.Args, "--secret"); i >= 0 && i+1 < len(c.Args) {
				j.secret = c.Args[i+1]
			}
		}
		out = append(out, j)
	}
	return out
}
