package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// FieldManager is the name rotate-key writes with. Helm 4 (server-side apply) shows it in conflict errors, so it
// says who wrote the field.
const FieldManager = "helm-rotate-key"

// RestartAnnotation is set on a consumer's pod template to restart it; its value "<rotation id>/<step>" makes a
// repeated restart of the same step a no-op.
const RestartAnnotation = rotation.Prefix + "restarted-for"

// Keyring is the rotation's view of the cluster: one keyring Secret and its consumers in one namespace. It
// implements rotation.Cluster.
type Keyring struct {
	*Cluster
	SecretName string
	// Instance names this run in Events (the lease holder).
	Instance string
}

// Secret reads the keyring Secret.
func (k *Keyring) Secret(ctx context.Context) (*corev1.Secret, error) {
	return k.Cluster.Secret(ctx, k.SecretName)
}

// UpdateSecret writes the Secret; the API server refuses it with a Conflict when its resourceVersion is stale.
func (k *Keyring) UpdateSecret(ctx context.Context, s *corev1.Secret) (*corev1.Secret, error) {
	out, err := k.Client.CoreV1().Secrets(k.Namespace).Update(ctx, s, metav1.UpdateOptions{FieldManager: FieldManager})
	if err != nil {
		return nil, fmt.Errorf("writing Secret %s/%s: %w", k.Namespace, s.Name, err)
	}
	return out, nil
}

// Restart sets the restart annotation on the consumer's pod template (no write when it already has the value).
func (k *Keyring) Restart(ctx context.Context, c rotation.ConsumerRef, value string) error {
	w, err := k.workload(ctx, c)
	if err != nil {
		return err
	}
	if w.template.Annotations[RestartAnnotation] == value {
		return nil
	}
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{"annotations": map[string]string{RestartAnnotation: value}}}}})
	apps := k.Client.AppsV1()
	opts := metav1.PatchOptions{FieldManager: FieldManager}
	switch c.Kind {
	case "Deployment":
		_, err = apps.Deployments(k.Namespace).Patch(ctx, c.Name, types.StrategicMergePatchType, patch, opts)
	case "StatefulSet":
		_, err = apps.StatefulSets(k.Namespace).Patch(ctx, c.Name, types.StrategicMergePatchType, patch, opts)
	case "DaemonSet":
		_, err = apps.DaemonSets(k.Namespace).Patch(ctx, c.Name, types.StrategicMergePatchType, patch, opts)
	}
	return err
}

// Rollout reports whether the consumer finished restarting for value: the controller saw the change, every
// replica is updated and available, and no pod without the value is left (terminating pods count: they still run).
func (k *Keyring) Rollout(ctx context.Context, c rotation.ConsumerRef, value string) (rotation.RolloutStatus, error) {
	w, err := k.workload(ctx, c)
	if err != nil {
		return rotation.RolloutStatus{}, err
	}
	if w.template.Annotations[RestartAnnotation] != value {
		return rotation.RolloutStatus{Progress: "not restarted yet"}, nil
	}
	if w.generation > w.observedGeneration {
		return rotation.RolloutStatus{Progress: "waiting for the controller to see the restart"}, nil
	}
	if w.onDelete {
		return rotation.RolloutStatus{}, fmt.Errorf("%s uses updateStrategy OnDelete, so a restart never replaces its pods: delete them by hand (kubectl delete pod -l ...) and rerun", c)
	}
	pods, err := k.Client.CoreV1().Pods(k.Namespace).List(ctx, metav1.ListOptions{LabelSelector: w.selector})
	if err != nil {
		return rotation.RolloutStatus{}, fmt.Errorf("listing the pods of %s: %w", c, err)
	}
	old := 0
	for _, p := range pods.Items {
		if p.Annotations[RestartAnnotation] != value {
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

// workloadState is what Rollout needs of a Deployment, StatefulSet or DaemonSet.
type workloadState struct {
	template                       metav1.ObjectMeta
	generation, observedGeneration int64
	desired, updated, available    int32
	selector                       string
	onDelete                       bool
}

func (k *Keyring) workload(ctx context.Context, c rotation.ConsumerRef) (workloadState, error) {
	apps := k.Client.AppsV1()
	var w workloadState
	var sel *metav1.LabelSelector
	switch c.Kind {
	case "Deployment":
		d, err := apps.Deployments(k.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
		if err != nil {
			return w, fmt.Errorf("reading %s: %w", c, err)
		}
		desired := int32(1)
		if d.Spec.Replicas != nil {
			desired = *d.Spec.Replicas
		}
		w = workloadState{template: d.Spec.Template.ObjectMeta, generation: d.Generation, observedGeneration: d.Status.ObservedGeneration,
			desired: desired, updated: d.Status.UpdatedReplicas, available: d.Status.AvailableReplicas}
		sel = d.Spec.Selector
	case "StatefulSet":
		s, err := apps.StatefulSets(k.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
		if err != nil {
			return w, fmt.Errorf("reading %s: %w", c, err)
		}
		desired := int32(1)
		if s.Spec.Replicas != nil {
			desired = *s.Spec.Replicas
		}
		w = workloadState{template: s.Spec.Template.ObjectMeta, generation: s.Generation, observedGeneration: s.Status.ObservedGeneration,
			desired: desired, updated: s.Status.UpdatedReplicas, available: s.Status.AvailableReplicas, onDelete: s.Spec.UpdateStrategy.Type == "OnDelete"}
		sel = s.Spec.Selector
	case "DaemonSet":
		d, err := apps.DaemonSets(k.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
		if err != nil {
			return w, fmt.Errorf("reading %s: %w", c, err)
		}
		w = workloadState{template: d.Spec.Template.ObjectMeta, generation: d.Generation, observedGeneration: d.Status.ObservedGeneration,
			desired: d.Status.DesiredNumberScheduled, updated: d.Status.UpdatedNumberScheduled, available: d.Status.NumberAvailable, onDelete: d.Spec.UpdateStrategy.Type == "OnDelete"}
		sel = d.Spec.Selector
	default:
		return w, fmt.Errorf("consumer kind %q is not Deployment, StatefulSet or DaemonSet", c.Kind)
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return w, fmt.Errorf("%s has no usable selector", c)
	}
	w.selector = s.String()
	return w, nil
}

// Event records an Event on the keyring Secret. Failures are ignored: an Event is a record, not a step.
func (k *Keyring) Event(ctx context.Context, s *corev1.Secret, eventType, reason, message string) {
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta:          metav1.ObjectMeta{GenerateName: s.Name + ".", Namespace: s.Namespace},
		InvolvedObject:      corev1.ObjectReference{Kind: "Secret", APIVersion: "v1", Namespace: s.Namespace, Name: s.Name, UID: s.UID, ResourceVersion: s.ResourceVersion},
		Reason:              reason,
		Message:             truncate(message, 1000), // Event messages are meant to be short; a refusal is long
		Type:                eventType,
		Source:              corev1.EventSource{Component: FieldManager},
		ReportingController: "tracebloc.io/helm-rotate-key",
		ReportingInstance:   truncate(k.Instance, 128),
		Action:              reason,
		FirstTimestamp:      now,
		LastTimestamp:       now,
		EventTime:           metav1.NewMicroTime(now.Time),
		Count:               1,
	}
	_, _ = k.Client.CoreV1().Events(s.Namespace).Create(ctx, ev, metav1.CreateOptions{})
}

var _ rotation.Cluster = (*Keyring)(nil)

// Preflight asks the API server (SelfSubjectAccessReview) for every permission the rotation needs, and names the
// missing ones before anything is written.
func (k *Keyring) Preflight(ctx context.Context, consumers []rotation.ConsumerRef) error {
	type need struct{ verb, group, resource, name string }
	needs := []need{{"get", "", "secrets", k.SecretName}, {"update", "", "secrets", k.SecretName}, {"create", "", "events", ""}, {"list", "", "pods", ""}}
	for _, c := range consumers {
		res := strings.ToLower(c.Kind) + "s"
		needs = append(needs, need{"get", "apps", res, c.Name}, need{"patch", "apps", res, c.Name})
	}
	if len(consumers) == 0 { // discovery lists the workloads; patching them is checked per name once found
		for _, res := range []string{"deployments", "statefulsets", "daemonsets"} {
			needs = append(needs, need{"list", "apps", res, ""}, need{"patch", "apps", res, ""})
		}
	}
	var missing []string
	for _, n := range needs {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: k.Namespace, Verb: n.verb, Group: n.group, Resource: n.resource, Name: n.name}}}
		out, err := k.Client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("checking permissions: %w", err)
		}
		if !out.Status.Allowed {
			target := n.resource
			if n.group != "" {
				target = n.resource + "." + n.group
			}
			if n.name != "" {
				target += "/" + n.name
			}
			missing = append(missing, n.verb+" "+target)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing permissions in namespace %s: %s; nothing was changed. Check with: kubectl auth can-i %s -n %s", k.Namespace, strings.Join(missing, ", "), missing[0], k.Namespace)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
