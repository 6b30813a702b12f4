package testcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TokenAppPort is the port both token app roles serve on (each pod on its own address).
const TokenAppPort = 8080

// TokenApp says how the example chart's applications run as the token app (test/tokenapp) on the runner node:
// jobs-manager signs, requests-proxy verifies.
type TokenApp struct {
	// SignerKeys and VerifierKeys choose each one's key delivery: "env" (envFrom, read at start) or "volume" (the
	// Secret volume's files, re-read when the runner refreshes them).
	SignerKeys, VerifierKeys string
	// SignerClockAhead makes the signer's clock run ahead of the verifier's (and the test's) by this much: its
	// tokens expire that much later than the verifier expects, as with a real clock skew between machines.
	SignerClockAhead time.Duration
	// Env is added to both containers (a chart without TOKEN_TTL_SECONDS gets it this way).
	Env []corev1.EnvVar
	// Naming is the keyring's naming style the applications read, "key.vN" (default) or "vN": a version written
	// under the other style's name is no key to them, as to a real application.
	Naming string
	// SignerMinReady and VerifierMinReady slow each Deployment's rollouts down (minReadySeconds: a new pod counts
	// only after it was ready this long), so that a rotation that does not wait for a rollout, or measures the TTL
	// from the wrong moment, meets old pods still serving. SignerReplicas overrides the chart's replicas (0: keep).
	SignerMinReady, VerifierMinReady time.Duration
	SignerReplicas                   int
}

// Values are the helm flags that run the applications as a. The same values fit the runbook's plain fixture
// chart, which reads command, args, env, port, readinessProbe, nodeSelector and tolerations too (and always mounts
// the keys as a volume).
func (a TokenApp) Values() []string {
	var out []string
	naming := a.Naming
	if naming == "" {
		naming = "key.vN"
	}
	for _, app := range []struct {
		key, name, role, keys string
		extra                 []string
		minReady              time.Duration
		replicas              int
	}{
		{"jobsManager", "jobs-manager", "signer", a.SignerKeys, []string{"--clock-ahead=" + a.SignerClockAhead.String()}, a.SignerMinReady, a.SignerReplicas},
		{"requestsProxy", "requests-proxy", "verifier", a.VerifierKeys, nil, a.VerifierMinReady, 0},
	} {
		source := "--keys=env"
		if app.keys == "volume" {
			source = "--keys=dir:/etc/" + app.name + "/keys"
		}
		set := func(field string, v any) {
			b, _ := json.Marshal(v)
			out = append(out, "--set-json", app.key+"."+field+"="+string(b))
		}
		selector, tolerations := RunnerPlacement()
		set("keyDelivery", app.keys)
		set("command", []string{"tokenapp"})
		set("args", append([]string{"--role=" + app.role, source, "--naming=" + naming}, app.extra...))
		if app.minReady > 0 {
			set("minReadySeconds", int(app.minReady/time.Second))
		}
		if app.replicas > 0 {
			set("replicas", app.replicas)
		}
		set("env", append([]corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}, a.Env...))
		set("port", TokenAppPort)
		set("readinessProbe", map[string]any{"httpGet": map[string]any{"path": "/readyz", "port": "http"}, "periodSeconds": 1, "failureThreshold": 1})
		set("nodeSelector", selector)
		set("tolerations", tolerations)
	}
	return out
}

// Expose creates a Service named name in front of the pods that match selector on the token app's port: the
// traffic driver finds ready endpoints through it (the example chart gives its signer no Service: nothing outside
// calls the jobs-manager; the plain fixture chart has none at all).
func (c *Cluster) Expose(ctx context.Context, namespace, name string, selector map[string]string) error {
	_, err := c.Client.CoreV1().Services(namespace).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Selector: selector, Ports: []corev1.ServicePort{{
			Name: "http", Port: 80, TargetPort: intstr.FromInt32(TokenAppPort)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("testcluster: Service %s/%s for the token app: %w", namespace, name, err)
	}
	return nil
}
