package testcluster

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// FleetKeyring is the i-th keyring Secret of a fleet as TestStatusAllNamespaces and make bench seed it: release
// "app<i>", v2 active with key, and told apart as the fleet view must — even i by the rotate-key library's label,
// odd i by rotate-key's state annotations alone (Idle, next rotation due at due).
func FleetKeyring(i int, key []byte, due time.Time) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app%d-requests-proxy-admin", i),
		Labels:      map[string]string{"app.kubernetes.io/instance": fmt.Sprintf("app%d", i)},
		Annotations: map[string]string{"helm.sh/resource-policy": "keep"}},
		Data: map[string][]byte{"key.v2": key, "active": []byte("v2")}}
	if i%2 == 0 {
		s.Labels["app.kubernetes.io/component"] = "rotate-key"
	} else {
		st := rotation.State{Phase: rotation.Idle, RotationID: "r1", From: 1, To: 2, NextRotationDue: due}
		s.Annotations = st.ApplyAnnotations(s.Annotations)
	}
	return s
}
