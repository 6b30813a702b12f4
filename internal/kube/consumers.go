package kube

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// references reports whether a pod template reads the Secret (volume, projected volume, env valueFrom, envFrom),
// which of its data keys it names explicitly (those versions are pinned: never retired), and whether it reads every
// data key (a volume or projected source without items, or envFrom): otherwise it sees only the ones it names.
func references(spec *corev1.PodSpec, secret string) (found bool, pinned []string, whole bool) {
	for _, v := range spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == secret {
			found = true
			whole = whole || len(v.Secret.Items) == 0
			for _, it := range v.Secret.Items {
				pinned = append(pinned, it.Key)
			}
		}
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.Secret != nil && src.Secret.Name == secret {
					found = true
					whole = whole || len(src.Secret.Items) == 0
					for _, it := range src.Secret.Items {
						pinned = append(pinned, it.Key)
					}
				}
			}
		}
	}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == secret {
				found = true
				pinned = append(pinned, e.ValueFrom.SecretKeyRef.Key)
			}
		}
		for _, from := range c.EnvFrom {
			if from.SecretRef != nil && from.SecretRef.Name == secret {
				found, whole = true, true
			}
		}
	}
	sort.Strings(pinned)
	return found, pinned, whole
}

// Consumers returns the workloads named in refs, or, when refs is empty, every Deployment, StatefulSet and
// DaemonSet in the namespace whose pod template references the keyring Secret.
func (k *Keyring) Consumers(ctx context.Context, refs []rotation.ConsumerRef) ([]rotation.Consumer, error) {
	consumers, _, err := k.consumers(ctx, refs)
	return consumers, err
}

// Survey returns the consumers, as Consumers does, and each one's rollout towards value (none when value is
// empty), reading each workload once and the namespace's pods once. It is status's read: its budget is five
// requests plus one per consumer (docs/benchmarks.md, "API requests"), where Consumers then Rollout per consumer
// would take three per consumer. The rotation's own wait uses Rollout, which re-reads while it waits.
func (k *Keyring) Survey(ctx context.Context, refs []rotation.ConsumerRef, value string) ([]rotation.Consumer, []rotation.RolloutStatus, error) {
	consumers, states, err := k.consumers(ctx, refs)
	if err != nil || value == "" || len(consumers) == 0 {
		return consumers, nil, err
	}
	pods, err := k.Client.CoreV1().Pods(k.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return consumers, nil, fmt.Errorf("listing the pods of namespace %s: %w", k.Namespace, err)
	}
	out := make([]rotation.RolloutStatus, len(consumers))
	for i, c := range consumers {
		if out[i], err = rolloutOf(c.Ref, states[i], value, pods.Items); err != nil {
			out[i] = rotation.RolloutStatus{Progress: err.Error()}
		}
	}
	return consumers, out, nil
}

// consumers finds the consumers and keeps what was read of each (for a rollout report without a second read).
func (k *Keyring) consumers(ctx context.Context, refs []rotation.ConsumerRef) ([]rotation.Consumer, []workloadState, error) {
	var out []rotation.Consumer
	var states []workloadState
	add := func(ref rotation.ConsumerRef, obj any, mustReference bool) error {
		w, spec, err := stateOf(ref, obj)
		if err != nil {
			return err
		}
		ok, pinned, whole := references(spec, k.SecretName)
		if !ok && mustReference {
			return fmt.Errorf("consumer %s/%s does not reference Secret %s in its pod template: check the consumers setting", ref.Kind, ref.Name, k.SecretName)
		}
		if ok || mustReference {
			out = append(out, rotation.Consumer{Ref: ref, Pinned: pinned, Whole: whole})
			states = append(states, w)
		}
		return nil
	}
	if len(refs) > 0 {
		for _, r := range refs {
			obj, err := k.get(ctx, r)
			if err != nil {
				return nil, nil, err
			}
			if err := add(r, obj, true); err != nil {
				return nil, nil, err
			}
		}
		return out, states, nil
	}
	apps := k.Client.AppsV1()
	deps, err := apps.Deployments(k.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("discovering the consumers of %s (list Deployments): %w", k.SecretName, err)
	}
	for i := range deps.Items {
		_ = add(rotation.ConsumerRef{Kind: "Deployment", Name: deps.Items[i].Name}, &deps.Items[i], false)
	}
	sts, err := apps.StatefulSets(k.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("discovering the consumers of %s (list StatefulSets): %w", k.SecretName, err)
	}
	for i := range sts.Items {
		_ = add(rotation.ConsumerRef{Kind: "StatefulSet", Name: sts.Items[i].Name}, &sts.Items[i], false)
	}
	dss, err := apps.DaemonSets(k.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("discovering the consumers of %s (list DaemonSets): %w", k.SecretName, err)
	}
	for i := range dss.Items {
		_ = add(rotation.ConsumerRef{Kind: "DaemonSet", Name: dss.Items[i].Name}, &dss.Items[i], false)
	}
	return out, states, nil
}
