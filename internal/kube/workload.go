package kube

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// workloadState is what a rollout report needs of a Deployment, StatefulSet or DaemonSet.
type workloadState struct {
	template                       metav1.ObjectMeta
	generation, observedGeneration int64
	desired, updated, available    int32
	selector                       labels.Selector
	onDelete                       bool
}

// get reads one consumer workload.
func (k *Keyring) get(ctx context.Context, c rotation.ConsumerRef) (any, error) {
	apps := k.Client.AppsV1()
	var (
		obj any
		err error
	)
	switch c.Kind {
	case "Deployment":
		obj, err = apps.Deployments(k.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
	case "StatefulSet":
		obj, err = apps.StatefulSets(k.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
	case "DaemonSet":
		obj, err = apps.DaemonSets(k.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
	default:
		return nil, fmt.Errorf("consumer kind %q is not Deployment, StatefulSet or DaemonSet", c.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("reading consumer %s: %w", c, err)
	}
	return obj, nil
}

// workload reads one consumer's rollout state.
func (k *Keyring) workload(ctx context.Context, c rotation.ConsumerRef) (workloadState, error) {
	obj, err := k.get(ctx, c)
	if err != nil {
		return workloadState{}, err
	}
	w, _, err := stateOf(c, obj)
	return w, err
}

// stateOf extracts the rollout state and the pod template of a workload read by get or listed.
func stateOf(c rotation.ConsumerRef, obj any) (workloadState, *corev1.PodSpec, error) {
	var w workloadState
	var sel *metav1.LabelSelector
	var spec *corev1.PodSpec
	replicas := func(r *int32) int32 {
		if r == nil {
			return 1
		}
		return *r
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		w = workloadState{template: o.Spec.Template.ObjectMeta, generation: o.Generation, observedGeneration: o.Status.ObservedGeneration,
			desired: replicas(o.Spec.Replicas), updated: o.Status.UpdatedReplicas, available: o.Status.AvailableReplicas}
		sel, spec = o.Spec.Selector, &o.Spec.Template.Spec
	case *appsv1.StatefulSet:
		w = workloadState{template: o.Spec.Template.ObjectMeta, generation: o.Generation, observedGeneration: o.Status.ObservedGeneration,
			desired: replicas(o.Spec.Replicas), updated: o.Status.UpdatedReplicas, available: o.Status.AvailableReplicas, onDelete: o.Spec.UpdateStrategy.Type == "OnDelete"}
		sel, spec = o.Spec.Selector, &o.Spec.Template.Spec
	case *appsv1.DaemonSet:
		w = workloadState{template: o.Spec.Template.ObjectMeta, generation: o.Generation, observedGeneration: o.Status.ObservedGeneration,
			desired: o.Status.DesiredNumberScheduled, updated: o.Status.UpdatedNumberScheduled, available: o.Status.NumberAvailable, onDelete: o.Spec.UpdateStrategy.Type == "OnDelete"}
		sel, spec = o.Spec.Selector, &o.Spec.Template.Spec
	default:
		return w, nil, fmt.Errorf("consumer kind %q is not Deployment, StatefulSet or DaemonSet", c.Kind)
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return w, spec, fmt.Errorf("%s has no usable selector", c)
	}
	w.selector = s
	return w, spec, nil
}

// Rollout reports whether the consumer finished restarting for value: the controller saw the change, every
// replica is updated and available, and no pod without the value is left (terminating pods count: they still run).
func (k *Keyring) Rollout(ctx context.Context, c rotation.ConsumerRef, value string) (rotation.RolloutStatus, error) {
	w, err := k.workload(ctx, c)
	if err != nil {
		return rotation.RolloutStatus{}, err
	}
	if w.template.Annotations[RestartAnnotation] != value || w.generation > w.observedGeneration || w.onDelete {
		return rolloutOf(c, w, value, nil) // decided without the pods
	}
	pods, err := k.Client.CoreV1().Pods(k.Namespace).List(ctx, metav1.ListOptions{LabelSelector: w.selector.String()})
	if err != nil {
		return rotation.RolloutStatus{}, fmt.Errorf("listing the pods of %s: %w", c, err)
	}
	return rolloutOf(c, w, value, pods.Items)
}

// rolloutOf judges a rollout from the workload's state and pods (those its selector does not match are ignored).
func rolloutOf(c rotation.ConsumerRef, w workloadState, value string, pods []corev1.Pod) (rotation.RolloutStatus, error) {
	if w.template.Annotations[RestartAnnotation] != value {
		return rotation.RolloutStatus{Progress: "not restarted yet"}, nil
	}
	if w.generation > w.observedGeneration {
		return rotation.RolloutStatus{Progress: "waiting for the controller to see the restart"}, nil
	}
	if w.onDelete {
		return rotation.RolloutStatus{}, fmt.Errorf("%s uses updateStrategy OnDelete, so a restart never replaces its pods: delete them by hand (kubectl delete pod -l ...) and rerun", c)
	}
	old := 0
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue // it ended (e.g. Evicted, kept until deleted): no process in it holds a key
		}
		if w.selector.Matches(labels.Set(p.Labels)) && p.Annotations[RestartAnnotation] != value {
			old++
		}
	}
	done := old == 0 && w.updated >= w.desired && w.available >= w.desired
	progress := fmt.Sprintf("%d/%d pods restarted, %d available", w.updated, w.desired, w.available)
	if old > 0 {
		progress += fmt.Sprintf(", %d pods from before still running", old)
	}
	if done {
		progress += ": done"
	}
	return rotation.RolloutStatus{Done: done, Progress: progress}, nil
}
