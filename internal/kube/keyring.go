package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
// implements engine.Cluster (checked in package action).
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

// Restart sets the restart annotation on the consumer's pod template. It does not read the workload first: a
// patch that sets the value it already has changes nothing (no new generation, no rollout), so a repeated restart
// of the same step stays a no-op at the cost of one request instead of two.
func (k *Keyring) Restart(ctx context.Context, c rotation.ConsumerRef, value string) error {
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{"annotations": map[string]string{RestartAnnotation: value}}}}})
	apps := k.Client.AppsV1()
	opts := metav1.PatchOptions{FieldManager: FieldManager}
	var err error
	switch c.Kind {
	case "Deployment":
		_, err = apps.Deployments(k.Namespace).Patch(ctx, c.Name, types.StrategicMergePatchType, patch, opts)
	case "StatefulSet":
		_, err = apps.StatefulSets(k.Namespace).Patch(ctx, c.Name, types.StrategicMergePatchType, patch, opts)
	case "DaemonSet":
		_, err = apps.DaemonSets(k.Namespace).Patch(ctx, c.Name, types.StrategicMergePatchType, patch, opts)
	default:
		return fmt.Errorf("consumer kind %q is not Deployment, StatefulSet or DaemonSet", c.Kind)
	}
	return err
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

// permission is one thing the rotation needs to be allowed to do in the keyring's namespace.
type permission struct{ verb, group, resource, name string }

func (p permission) String() string {
	target := p.resource
	if p.group != "" {
		target = p.resource + "." + p.group
	}
	if p.name != "" {
		target += "/" + p.name
	}
	return p.verb + " " + target
}

// Preflight checks every permission the rotation needs and names the missing ones before anything is written. One
// SelfSubjectRulesReview answers all of them when the authorizer can list its rules (RBAC can); what it does not
// grant — or everything, when the review is incomplete (e.g. a webhook authorizer) — is asked one
// SelfSubjectAccessReview each, the authorizer's own answer.
func (k *Keyring) Preflight(ctx context.Context, consumers []rotation.ConsumerRef) error {
	needs := []permission{{"get", "", "secrets", k.SecretName}, {"update", "", "secrets", k.SecretName}, {"create", "", "events", ""}, {"list", "", "pods", ""}}
	for _, c := range consumers {
		res := strings.ToLower(c.Kind) + "s"
		needs = append(needs, permission{"get", "apps", res, c.Name}, permission{"patch", "apps", res, c.Name})
	}
	if len(consumers) == 0 { // discovery lists the workloads; patching them is checked per name once found
		for _, res := range []string{"deployments", "statefulsets", "daemonsets"} {
			needs = append(needs, permission{"list", "apps", res, ""}, permission{"patch", "apps", res, ""})
		}
	}
	rules, err := k.Client.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: k.Namespace}}, metav1.CreateOptions{})
	var granted []authorizationv1.ResourceRule
	if err == nil {
		granted = rules.Status.ResourceRules
	}
	var missing []string
	for _, n := range needs {
		if grants(granted, n) {
			continue
		}
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: k.Namespace, Verb: n.verb, Group: n.group, Resource: n.resource, Name: n.name}}}
		out, err := k.Client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("checking permissions: %w", err)
		}
		if !out.Status.Allowed {
			missing = append(missing, n.String())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing permissions in namespace %s: %s; nothing was changed. Check with: kubectl auth can-i %s -n %s", k.Namespace, strings.Join(missing, ", "), missing[0], k.Namespace)
	}
	return nil
}

// grants reports whether one of the rules allows p. Rules only ever grant (RBAC has no deny), so a rule that
// matches is proof; no match proves nothing, and the caller asks the authorizer.
func grants(rules []authorizationv1.ResourceRule, p permission) bool {
	match := func(list []string, v string) bool { return slices.Contains(list, "*") || slices.Contains(list, v) }
	for _, r := range rules {
		if match(r.Verbs, p.verb) && match(r.APIGroups, p.group) && match(r.Resources, p.resource) &&
			(len(r.ResourceNames) == 0 || (p.name != "" && slices.Contains(r.ResourceNames, p.name))) {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// AdmissionPolicyName is the name the rotate-key library gives the admission policy of this keyring.
func (k *Keyring) AdmissionPolicyName() string {
	name := "rotate-key." + k.Namespace + "." + k.SecretName
	if len(name) > 253 {
		name = name[:253]
	}
	return name
}

// AdmissionPolicy reports whether the keyring's admission policy and its binding are installed (an error: it
// could not be told, e.g. no permission to read cluster-scoped policies).
func (k *Keyring) AdmissionPolicy(ctx context.Context) (bool, error) {
	name := k.AdmissionPolicyName()
	for _, get := range []func() error{
		func() error {
			_, err := k.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, name, metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := k.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Get(ctx, name, metav1.GetOptions{})
			return err
		},
	} {
		switch err := get(); {
		case apierrors.IsNotFound(err):
			return false, nil
		case err != nil:
			return false, err
		}
	}
	return true, nil
}
