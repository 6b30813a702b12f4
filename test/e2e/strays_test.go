package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// TestPodsNoRolloutRestartsBlockThePromotion (issue 15.4): a pod that reads the keyring and belongs to no consumer
// (here a bare pod; a Job's or a CronJob's is judged the same way, see internal/kube) keeps the keyring it read at
// start. Started before the add, it does not know the new key and would reject its tokens after the promotion;
// started before the promotion, it signs with the old key past the retire-after the rollout would compute. Each
// time the run stops before the step, exit 6, naming the pod, with the keyring as the last step left it; once the
// pod is gone the rerun carries on. (The check before the retirement is the same rule: internal/engine.)
func TestPodsNoRolloutRestartsBlockThePromotion(t *testing.T) {
	parallel(t, 40*time.Second)
	ctx := context.Background()
	ns := namespace(t, "strays", nil)
	fixture(t, ns)
	minter := func(name string) {
		t.Helper()
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.PodSpec{
			// It tolerates every taint: a kwok node that misses heartbeats on a loaded machine must not evict it.
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{Name: "m", Image: "minter", Env: []corev1.EnvVar{{Name: "KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "app-requests-proxy-admin"}, Key: "active"}}}}}}}}
		if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // the next write comes in a later second than the pod's creation
	}
	gone := func(name string) {
		t.Helper()
		if err := cluster.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
			t.Fatal(err)
		}
		waitGone(t, ns, name)
	}
	run := func() (string, int) {
		out, err := exec.Command(cluster.Binary, "--kubeconfig", cluster.Kubeconfig, "-n", ns, "run", "app", "--yes", "--timeout", "2m").CombinedOutput()
		return string(out), exitCode(err)
	}
	refused := func(pod, why, state string) {
		t.Helper()
		out, code := run()
		if code != 6 || !strings.Contains(out, pod) || !strings.Contains(out, "every-reader-restarted") || !strings.Contains(out, why) {
			t.Fatalf("the run must be refused naming %s (exit 6), got exit %d:\n%s", pod, code, out)
		}
		if got, _ := endState(t, ns); !strings.HasPrefix(got, state) {
			t.Fatalf("the refusal must leave the keyring as the last step left it: %s, want %s", got, state)
		}
	}
	minter("minter-1") // reads the keyring from before the rotation
	refused("minter-1", "do not know it", "RolledOut keys=active,key.v1,key.v2 active=v1")
	gone("minter-1")
	minter("minter-2") // knows v2, but reads 'active' before the promotion: it signs with v1
	refused("minter-2", "signs with v1 until it restarts", "Promoted keys=active,key.v1,key.v2 active=v2")
	gone("minter-2")
	if out, code := run(); code != 3 {
		t.Fatalf("with the pods gone the run must schedule the retirement and wait for the TTL (exit 3), got exit %d:\n%s", code, out)
	}
	if state, _ := endState(t, ns); !strings.HasPrefix(state, "Waiting keys=active,key.v1,key.v2 active=v2") {
		t.Fatalf("after the rerun: %s", state)
	}
}

// TestConsumerThatCannotReadTheNewVersionBlocksThePromotion (the eighth attack on the traffic instrument): a
// verifier that mounts only the items key.v1 and active rejected every v2 token from the promotion on (1,842 live
// tokens under real traffic). The run now stops before promoting (exit 6, naming it); once its template names key.v2
// too and has rolled out, the rerun promotes.
func TestConsumerThatCannotReadTheNewVersionBlocksThePromotion(t *testing.T) {
	parallel(t, 40*time.Second)
	ctx := context.Background()
	ns := namespace(t, "blind", nil)
	fixture(t, ns)
	items := func(keys ...string) {
		t.Helper()
		var ks []string
		for _, k := range keys {
			ks = append(ks, fmt.Sprintf(`{"key":%q,"path":%q}`, k, k))
		}
		patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"volumes":[{"name":"keys","secret":{"secretName":"app-requests-proxy-admin","items":[%s]}}]}}}}`, strings.Join(ks, ","))
		if _, err := cluster.Client.AppsV1().Deployments(ns).Patch(ctx, "verifier", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	items("key.v1", "active")
	run := func() (string, int) {
		out, err := exec.Command(cluster.Binary, "--kubeconfig", cluster.Kubeconfig, "-n", ns, "run", "app", "--yes", "--timeout", "2m").CombinedOutput()
		return string(out), exitCode(err)
	}
	out, code := run()
	if code != 6 || !strings.Contains(out, "every-consumer-reads-the-new-version") || !strings.Contains(out, "Deployment/verifier") {
		t.Fatalf("the promotion must be refused naming the verifier (exit 6), got exit %d:\n%s", code, out)
	}
	if state, _ := endState(t, ns); !strings.HasPrefix(state, "RolledOut keys=active,key.v1,key.v2 active=v1") {
		t.Fatalf("refused before the promotion: %s", state)
	}
	items("key.v1", "key.v2", "active")
	if out, code := run(); code != 3 {
		t.Fatalf("once the verifier names key.v2 the run must promote and wait (exit 3), got exit %d:\n%s", code, out)
	}
}
