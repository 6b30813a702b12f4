package kube

import (
	"context"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// references reports whether a pod template reads the Secret (volume, projected volume, env valueFrom, envFrom),
// and which of its data keys it names explicitly (those versions are pinned: never retired).
func references(spec *corev1.PodSpec, secret string) (bool, []string) {
	found := false
	var pinned []string
	for _, v := range spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == secret {
			found = true
			for _, it := range v.Secret.Items {
				pinned = append(pinned, it.Key)
			}
		}
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.Secret != nil && src.Secret.Name == secret {
					found = true
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
				found = true
			}
		}
	}
	sort.Strings(pinned)
	return found, pinned
}

// Consumers returns the workloads named in refs, or, when refs is empty, every Deployment, StatefulSet and
// DaemonSet in the namespace whose pod template references the keyring Secret.
func (k *Keyring) Consumers(ctx context.Context, refs []rotation.ConsumerRef) ([]rotation.Consumer, error) {
	var out []rotation.Consumer
	add := func(kind, name string, spec *corev1.PodSpec, mustReference bool) error {
		ok, pinned := references(spec, k.SecretName)
		if !ok && mustReference {
			return fmt.Errorf("consumer %s/%s does not reference Secret %s in its pod template: check the consumers setting", kind, name, k.SecretName)
		}
		if ok || mustReference {
			out = append(out, rotation.Consumer{Ref: rotation.ConsumerRef{Kind: kind, Name: name}, Pinned: pinned})
		}
		return nil
	}
	apps := k.Client.AppsV1()
	if len(refs) > 0 {
		for _, r := range refs {
			spec, err := k.podSpec(ctx, r)
			if err != nil {
				return nil, err
			}
			if err := add(r.Kind, r.Name, spec, true); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	deps, err := apps.Deployments(k.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("discovering the consumers of %s (list Deployments): %w", k.SecretName, err)
	}
	for i := range deps.Items {
		_ = add("Deployment", deps.Items[i].Name, &deps.Items[i].Spec.Template.Spec, false)
	}
	sts, err := apps.StatefulSets(k.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("discovering the consumers of %s (list StatefulSets): %w", k.SecretName, err)
	}
	for i := range sts.Items {
		_ = add("StatefulSet", sts.Items[i].Name, &sts.Items[i].Spec.Template.Spec, false)
	}
	dss, err := apps.DaemonSets(k.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("discovering the consumers of %s (list DaemonSets): %w", k.SecretName, err)
	}
	for i := range dss.Items {
		_ = add("DaemonSet", dss.Items[i].Name, &dss.Items[i].Spec.Template.Spec, false)
	}
	return out, nil
}

func (k *Keyring) podSpec(ctx context.Context, r rotation.ConsumerRef) (*corev1.PodSpec, error) {
	apps := k.Client.AppsV1()
	var (
		spec *corev1.PodSpec
		err  error
	)
	switch r.Kind {
	case "Deployment":
		var d *appsv1.Deployment
		if d, err = apps.Deployments(k.Namespace).Get(ctx, r.Name, metav1.GetOptions{}); err == nil {
			spec = &d.Spec.Template.Spec
		}
	case "StatefulSet":
		var s *appsv1.StatefulSet
		if s, err = apps.StatefulSets(k.Namespace).Get(ctx, r.Name, metav1.GetOptions{}); err == nil {
			spec = &s.Spec.Template.Spec
		}
	case "DaemonSet":
		var d *appsv1.DaemonSet
		if d, err = apps.DaemonSets(k.Namespace).Get(ctx, r.Name, metav1.GetOptions{}); err == nil {
			spec = &d.Spec.Template.Spec
		}
	default:
		return nil, fmt.Errorf("consumer kind %q is not Deployment, StatefulSet or DaemonSet", r.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("reading consumer %s: %w", r, err)
	}
	return spec, nil
}
