package testcluster

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestExpandKubeVars(t *testing.T) {
	vars := map[string]string{"A": "one", "B": "two"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for in, want := range map[string]string{
		"$(A)":          "one",
		"x-$(A)-$(B)":   "x-one-two",
		"$(MISSING)":    "$(MISSING)",
		"$$(A)":         "$(A)",
		"$A":            "$A",
		"$(A":           "$(A",
		"trailing $":    "trailing $",
		"--secret=$(B)": "--secret=two",
	} {
		if got := expandKubeVars(in, lookup); got != want {
			t.Errorf("expandKubeVars(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPodField(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "n", UID: "u", Labels: map[string]string{"app": "x"}, Annotations: map[string]string{"a": "b"}},
		Spec: corev1.PodSpec{NodeName: RunnerNode, ServiceAccountName: "sa"}}
	for path, want := range map[string]string{"metadata.name": "p", "metadata.namespace": "n", "metadata.uid": "u", "spec.nodeName": RunnerNode,
		"spec.serviceAccountName": "sa", "metadata.labels['app']": "x", "metadata.annotations['a']": "b", "status.podIP": "127.0.0.1"} {
		if got, err := podField(pod, path); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	if _, err := podField(pod, "spec.nope"); err == nil {
		t.Error("an unsupported field must be an error")
	}
}
