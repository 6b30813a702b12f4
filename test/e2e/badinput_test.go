package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// TestMalformedSecretsAreRefusedUntouched runs `rotate-key run` against malformed keyring Secrets: each is refused
// with exit code 6 (or 2 for a bad setting) and a message naming the Secret and the rule, and the Secret stays
// byte-identical (same resourceVersion, same data and annotations).
func TestMalformedSecretsAreRefusedUntouched(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "badinput", nil)
	good := []byte("Qm9vdHN0cmFwS2V5TWF0ZXJpYWxGb3JUZXN0aW5nT25seUFCQ0RFRkdISUpLTE1O")
	waiting := map[string]string{rotation.AnnoSchema: "1", rotation.AnnoPhase: "Waiting", rotation.AnnoRotationID: "r1", rotation.AnnoFrom: "v1", rotation.AnnoTo: "v2",
		rotation.AnnoPromotedAt: time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339), rotation.AnnoTTLUsed: "60",
		rotation.AnnoRetireAfter: time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}
	cases := []struct {
		name        string
		data        map[string][]byte
		annotations map[string]string
		code        int
		want        string
	}{
		{"no data", nil, nil, 6, "has no data"},
		{"missing active", map[string][]byte{"key.v1": good}, nil, 6, "no `active`"},
		{"garbage active", map[string][]byte{"key.v1": good, "active": []byte("latest")}, nil, 6, "not a key id"},
		{"active names a missing key", map[string][]byte{"key.v1": good, "active": []byte("v2")}, nil, 6, "names v2, which is not in the Secret"},
		{"active holds key material", map[string][]byte{"key.v1": good, "active": good}, nil, 6, "not a key id"},
		{"version in both styles", map[string][]byte{"key.v1": good, "v1": good, "active": []byte("v1")}, nil, 6, "present twice"},
		{"short key", map[string][]byte{"key.v1": []byte("tooShort12345678"), "active": []byte("v1")}, nil, 6, "bits of entropy"},
		{"empty key", map[string][]byte{"key.v1": {}, "active": []byte("v1")}, nil, 6, "is empty"},
		{"non-numeric version", map[string][]byte{"key.vX": good, "key.v1": good, "active": []byte("v1")}, nil, 6, "looks like a key version"},
		{"version zero", map[string][]byte{"key.v0": good, "key.v1": good, "active": []byte("v1")}, nil, 6, "positive integers"},
		{"huge values", map[string][]byte{"key.v1": bytes.Repeat([]byte("a"), 512*1024), "active": bytes.Repeat([]byte("v"), 256*1024)}, nil, 6, "not a key id"},
		{"newer state schema", map[string][]byte{"key.v1": good, "active": []byte("v1")}, map[string]string{rotation.AnnoSchema: "9"}, 6, "newer rotate-key"},
		{"unknown phase", map[string][]byte{"key.v1": good, "active": []byte("v1")}, map[string]string{rotation.AnnoPhase: "Rotating"}, 6, "not a known phase"},
		{"phase without versions", map[string][]byte{"key.v1": good, "active": []byte("v1")}, map[string]string{rotation.AnnoPhase: "Promoted"}, 6, "edited by hand"},
		{"bad ttl setting", map[string][]byte{"key.v1": good, "active": []byte("v1")}, map[string]string{rotation.AnnoTTLSeconds: "soon"}, 2, rotation.AnnoTTLSeconds},
		{"pinned version about to be retired", map[string][]byte{"key.v1": good, "key.v2": bytes.ToUpper(good), "active": []byte("v2")}, waiting, 6, "names data key \"key.v1\" explicitly"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := "bad" + strings.Repeat("x", i%3) + string(rune('a'+i))
			secret := name + "-requests-proxy-admin"
			s, err := cluster.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secret, Annotations: tc.annotations}, Data: tc.data}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "pinned version about to be retired" {
				labels := map[string]string{"app": name}
				d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
					Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x",
						Env: []corev1.EnvVar{{Name: "OLD_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: "key.v1"}}}}}}}}}}
				if _, err := cluster.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			before, _ := json.Marshal(s)
			cmd := exec.Command(cluster.Binary, "--kubeconfig", cluster.Kubeconfig, "-n", ns, "run", name, "--yes", "--consumer", consumerFor(tc.name, name))
			out, err := cmd.CombinedOutput()
			if exitCode(err) != tc.code || !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), secret) && tc.code == 6 {
				t.Fatalf("exit %d, want %d with %q; output:\n%.600s", exitCode(err), tc.code, tc.want, out)
			}
			if len(out) > 2000 {
				t.Fatalf("%d bytes of output: the input is echoed", len(out))
			}
			if bytes.Contains(out, good) || bytes.Contains(out, bytes.ToUpper(good)) {
				t.Fatal("key material in the output")
			}
			after, err := cluster.Client.CoreV1().Secrets(ns).Get(ctx, secret, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			afterJSON, _ := json.Marshal(after)
			if !bytes.Equal(before, afterJSON) {
				t.Fatalf("the Secret changed (resourceVersion %s -> %s)", s.ResourceVersion, after.ResourceVersion)
			}
		})
	}
	t.Logf("%d malformed Secrets refused, each left byte-identical", len(cases))
}

// consumerFor names the one consumer of the pinned case; the others have none (discovery finds nothing).
func consumerFor(caseName, name string) string {
	if caseName == "pinned version about to be retired" {
		return "Deployment/" + name
	}
	return "Deployment/none-" + name
}
