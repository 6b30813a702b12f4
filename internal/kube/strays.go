package kube

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// Strays returns the pods that read the keyring Secret, still run (an ended one — Succeeded, or Failed such as
// Evicted — holds no key), were created at or before since, and belong to none of the consumers: a Job's or a
// CronJob's pod, a bare pod, a workload created mid-rotation. No rollout restarts them, so each keeps the keyring
// it read. since counts in whole seconds, as creation timestamps do: a pod created in the same second may have read
// the keyring before. One LIST of the namespace's pods; a pod belongs to a consumer when its controller is the
// consumer itself (StatefulSet, DaemonSet) or the ReplicaSet a Deployment names after its pod-template-hash.
func (k *Keyring) Strays(ctx context.Context, consumers []rotation.ConsumerRef, since time.Time) ([]string, error) {
	pods, err := k.Client.CoreV1().Pods(k.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing the pods of namespace %s (to find pods that read the keyring but no rollout restarts): %w", k.Namespace, err)
	}
	return straysOf(pods.Items, k.SecretName, consumers, since), nil
}

// straysOf is Strays on pods already listed.
func straysOf(pods []corev1.Pod, secret string, consumers []rotation.ConsumerRef, since time.Time) []string {
	cutoff := since.Truncate(time.Second)
	var out []string
	for i := range pods {
		p := &pods[i]
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || p.CreationTimestamp.Time.After(cutoff) {
			continue
		}
		if reads, _, _ := references(&p.Spec, secret); !reads || ownedByConsumer(p, consumers) {
			continue
		}
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

// ownedByConsumer reports whether a rollout of one of the consumers replaces pod p.
func ownedByConsumer(p *corev1.Pod, consumers []rotation.ConsumerRef) bool {
	owner := metav1.GetControllerOf(p)
	if owner == nil {
		return false
	}
	for _, c := range consumers {
		switch {
		case c.Kind == "Deployment" && owner.Kind == "ReplicaSet" && p.Labels["pod-template-hash"] != "" && owner.Name == c.Name+"-"+p.Labels["pod-template-hash"]:
			return true
		case (c.Kind == "StatefulSet" || c.Kind == "DaemonSet") && owner.Kind == c.Kind && owner.Name == c.Name:
			return true
		}
	}
	return false
}
