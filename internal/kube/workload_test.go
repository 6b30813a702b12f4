package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// A pod that ended (an Evicted one stays, phase Failed, until someone deletes it; a finished one is Succeeded) runs
// no process that holds a key: it must not hold a rollout open until it times out — every rotation, emergency ones
// included, timed out on one Evicted pod.
func TestRolloutIgnoresPodsThatEnded(t *testing.T) {
	const value = "r1/after-add"
	w := workloadState{template: metav1.ObjectMeta{Annotations: map[string]string{RestartAnnotation: value}}, generation: 2, observedGeneration: 2,
		desired: 1, updated: 1, available: 1, selector: labels.SelectorFromSet(labels.Set{"app": "signer"})}
	pod := func(name, restarted string, phase corev1.PodPhase) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "signer"}, Annotations: map[string]string{RestartAnnotation: restarted}},
			Status: corev1.PodStatus{Phase: phase}}
	}
	c := rotation.ConsumerRef{Kind: "Deployment", Name: "signer"}
	for _, tc := range []struct {
		name string
		old  corev1.Pod
		done bool
	}{
		{"an Evicted pod from before", pod("evicted", "", corev1.PodFailed), true},
		{"a Succeeded pod from before", pod("finished", "", corev1.PodSucceeded), true},
		{"a running pod from before", pod("running", "", corev1.PodRunning), false},
		{"a pending pod from before", pod("pending", "", corev1.PodPending), false},
	} {
		st, err := rolloutOf(c, w, value, []corev1.Pod{pod("new", value, corev1.PodRunning), tc.old})
		if err != nil || st.Done != tc.done {
			t.Errorf("%s: done %v (%s), want %v: %v", tc.name, st.Done, st.Progress, tc.done, err)
		}
	}
}
