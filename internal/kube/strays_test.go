package kube

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// Which pods no rollout of the consumers restarts: every way a pod reads the keyring, every owner, the cut-off second.
func TestStraysOf(t *testing.T) {
	since := time.Date(2026, 12, 1, 12, 0, 0, 700_000_000, time.UTC) // created-at has whole seconds: 12:00:00 may be before
	envFrom := corev1.PodSpec{Containers: []corev1.Container{{EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "keys"}}}}}}}
	volume := corev1.PodSpec{Volumes: []corev1.Volume{{Name: "k", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "keys"}}}}}
	projected := corev1.PodSpec{Volumes: []corev1.Volume{{Name: "k", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "keys"}}}}}}}}}
	env := corev1.PodSpec{InitContainers: []corev1.Container{{Env: []corev1.EnvVar{{Name: "K", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "keys"}, Key: "active"}}}}}}}
	other := corev1.PodSpec{Containers: []corev1.Container{{EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "other"}}}}}}}
	pod := func(name string, created time.Time, spec corev1.PodSpec, phase corev1.PodPhase, ownerKind, ownerName, hash string) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created), Labels: map[string]string{}}, Spec: spec, Status: corev1.PodStatus{Phase: phase}}
		if hash != "" {
			p.Labels["pod-template-hash"] = hash
		}
		if ownerKind != "" {
			p.OwnerReferences = []metav1.OwnerReference{{Kind: ownerKind, Name: ownerName, Controller: ptr.To(true)}}
		}
		return p
	}
	before, same, after := since.Add(-time.Hour), since.Truncate(time.Second), since.Add(time.Second)
	pods := []corev1.Pod{
		pod("deploy-pod", before, envFrom, corev1.PodRunning, "ReplicaSet", "signer-5d8f", "5d8f"),
		pod("other-deploy-pod", before, envFrom, corev1.PodRunning, "ReplicaSet", "signer2-5d8f", "5d8f"), // not the consumer's
		pod("sts-pod", before, volume, corev1.PodRunning, "StatefulSet", "verifier", ""),
		pod("ds-pod", before, volume, corev1.PodRunning, "DaemonSet", "agent", ""), // a DaemonSet nobody listed
		pod("job-pod", before, env, corev1.PodRunning, "Job", "minter", ""),
		pod("bare-projected", same, projected, corev1.PodPending, "", "", ""),
		pod("bare-later", after, envFrom, corev1.PodRunning, "", "", ""),
		pod("evicted", before, envFrom, corev1.PodFailed, "", "", ""),
		pod("done", before, envFrom, corev1.PodSucceeded, "Job", "minter", ""),
		pod("reads-another", before, other, corev1.PodRunning, "", "", ""),
	}
	consumers := []rotation.ConsumerRef{{Kind: "Deployment", Name: "signer"}, {Kind: "StatefulSet", Name: "verifier"}}
	got := strings.Join(straysOf(pods, "keys", consumers, since), " ")
	if want := "bare-projected ds-pod job-pod other-deploy-pod"; got != want {
		t.Fatalf("strays: got %q, want %q", got, want)
	}
}
