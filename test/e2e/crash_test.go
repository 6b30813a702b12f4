package e2e

import (
	"context"
	cryptorand "crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// killProxy forwards rotate-key's API requests to the cluster and kills the rotate-key process right after the
// k-th mutating request was committed by the API server, before the process sees the answer.
type killProxy struct {
	mu       sync.Mutex
	mutating int
	killAt   int
	proc     *os.Process
	killed   bool
	server   *httptest.Server
}

func newKillProxy(t *testing.T) *killProxy {
	t.Helper()
	p := &killProxy{}
	upstream, err := url.Parse(cluster.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(upstream)
	rp.Transport = transport
	rp.ModifyResponse = func(resp *http.Response) error {
		req := resp.Request
		if req.Method == http.MethodGet || strings.Contains(req.URL.Path, "selfsubjectaccessreviews") || resp.StatusCode >= 300 {
			return nil
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.mutating++
		if p.mutating == p.killAt && p.proc != nil {
			_ = syscall.Kill(-p.proc.Pid, syscall.SIGKILL) // helm and the plugin it runs
			p.killed = true
		}
		return nil
	}
	p.server = httptest.NewServer(rp)
	t.Cleanup(p.server.Close)
	return p
}

// kubeconfig writes a kubeconfig that talks to the proxy.
func (p *killProxy) kubeconfig(t *testing.T, ns string) string {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["proxy"] = &clientcmdapi.Cluster{Server: p.server.URL}
	cfg.AuthInfos["proxy"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["proxy"] = &clientcmdapi.Context{Cluster: "proxy", AuthInfo: "proxy", Namespace: ns}
	cfg.CurrentContext = "proxy"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// run runs `helm rotate-key ARGS` (Helm 3 or 4, h) through the proxy, killing Helm and the plugin (one process
// group) after the killAt-th mutating request (0: never).
func (p *killProxy) run(t *testing.T, h *testcluster.Helm, kubeconfig string, killAt int, args ...string) (string, int, bool) {
	t.Helper()
	p.mu.Lock()
	p.mutating, p.killAt, p.killed = 0, killAt, false
	p.mu.Unlock()
	cmd := exec.Command(h.Bin, append([]string{"--kubeconfig", kubeconfig, "rotate-key"}, args...)...)
	cmd.Env = h.Env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.proc = cmd.Process
	p.mu.Unlock()
	err := cmd.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.proc = nil
	return out.String(), exitCode(err), p.killed
}

// fixture creates a keyring Secret (60 s TTL configured on it) and two consumers, one by env, one by volume.
func fixture(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	k, err := keyring.Encoding{Kind: keyring.Alphanumeric, Length: 64}.Generate(randReader{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cluster.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "app-requests-proxy-admin", Annotations: map[string]string{rotation.AnnoTTLSeconds: "60", "helm.sh/resource-policy": "keep"}},
		Data:       map[string][]byte{"key.v1": k, "active": []byte("v1")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"signer", "verifier"} {
		labels := map[string]string{"app": name}
		spec := corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: "registry.example.com/" + name + ":1"}}}
		if name == "signer" {
			spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-requests-proxy-admin"}}}}
		} else {
			spec.Volumes = []corev1.Volume{{Name: "keys", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "app-requests-proxy-admin"}}}}
		}
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}}}
		if _, err := cluster.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// holdVerifier makes the fixture's verifier pods take `seconds` to count as available (minReadySeconds), so that a
// rollout waits; holdVerifier(t, ns, 0) releases it.
func holdVerifier(t *testing.T, ns string, seconds int) {
	t.Helper()
	holdDeployment(t, ns, "verifier", seconds)
}

// holdDeployment makes Deployment name's pods take `seconds` to count as available (minReadySeconds, with a progress
// deadline that outlasts it), so that its rollouts wait; 0 releases it. Pods already running count as available
// again only `seconds` after they became ready.
func holdDeployment(t *testing.T, ns, name string, seconds int) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"minReadySeconds":%d,"progressDeadlineSeconds":%d}}`, seconds, seconds+600)
	if _, err := cluster.Client.AppsV1().Deployments(ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// endState summarises what a segment must end with, and how often each consumer's pod template changed.
func endState(t *testing.T, ns string) (string, map[string]int64) {
	t.Helper()
	ctx := context.Background()
	s, err := cluster.Client.CoreV1().Secrets(ns).Get(ctx, "app-requests-proxy-admin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := keyring.Validate(ns+"/secret", s.Data); err != nil {
		t.Fatalf("invalid keyring: %v", err)
	}
	var keys []string
	for k := range s.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	st, err := rotation.ParseState(s.Annotations)
	if err != nil {
		t.Fatal(err)
	}
	gens := map[string]int64{}
	for _, name := range []string{"signer", "verifier"} {
		d, err := cluster.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		gens[name] = d.Generation
	}
	lease := ""
	if s.Annotations[rotation.AnnoLease] != "" && st.Phase == rotation.Idle {
		lease = " (lease left behind)"
	}
	return fmt.Sprintf("%s keys=%s active=%s%s", st.Phase, strings.Join(keys, ","), s.Data["active"], lease), gens
}

// retireDue moves a Waiting rotation's retire-after into the past, as the passing of the TTL would.
func retireDue(t *testing.T, ns string) { retireDueOf(t, ns, "app-requests-proxy-admin", "") }

// retireDueOf makes the retirement of keyring Secret secret due, as the passing of the TTL would: promoted an hour
// ago, retire-after a minute ago; ttlUsed, when set, replaces ttl-seconds-used (a 90-day TTL cannot have passed in
// an hour, and an earlier retire-after alone reads as a hand edit).
func retireDueOf(t *testing.T, ns, secret, ttlUsed string) {
	t.Helper()
	retireDueWith(t, cluster.Client, ns, secret, ttlUsed)
}

// retireDueWith is retireDueOf as client c (under the admission policy only a rotator may write the state).
func retireDueWith(t *testing.T, c kubernetes.Interface, ns, secret, ttlUsed string) {
	t.Helper()
	ctx := context.Background()
	s, err := c.CoreV1().Secrets(ns).Get(ctx, secret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ttlUsed != "" {
		s.Annotations[rotation.AnnoTTLUsed] = ttlUsed
	}
	s.Annotations[rotation.AnnoPromotedAt] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	s.Annotations[rotation.AnnoRetireAfter] = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	if _, err := c.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

type segment struct {
	name    string
	args    []string
	prepare func(t *testing.T, p *killProxy, h *testcluster.Helm, kubeconfig, ns string) // brings a fresh namespace to the segment's start
	// restarts is how many times each consumer's pod template must change during the segment
	restarts int64
	want     string
}

// TestCrashSafety kills `helm rotate-key` (Helm 3 and Helm 4 in turn) right after each mutating request of a
// clean run — start to the TTL wait, the retirement, and an abort — then reruns it: the end state must equal the
// clean run's, with exactly one new key, a valid keyring, and each consumer restarted once per rollout step.
func TestCrashSafety(t *testing.T) {
	parallel(t, 155*time.Second) // its own namespaces, Helm folders and proxy: nothing shared with the other tests
	p := newKillProxy(t)
	helms := []*testcluster.Helm{newHelm(t, 3), newHelm(t, 4)}
	run := []string{"run", "app", "--yes", "--timeout", "2m"}
	toWaiting := func(t *testing.T, p *killProxy, h *testcluster.Helm, kc, ns string) {
		if out, code, _ := p.run(t, h, kc, 0, run...); code != 3 {
			t.Fatalf("clean run to Waiting: exit %d\n%s", code, out)
		}
	}
	segments := []segment{
		{"start to waiting", run, func(*testing.T, *killProxy, *testcluster.Helm, string, string) {}, 2, "Waiting keys=active,key.v1,key.v2 active=v2"},
		{"retire", run, func(t *testing.T, p *killProxy, h *testcluster.Helm, kc, ns string) {
			toWaiting(t, p, h, kc, ns)
			retireDue(t, ns)
		}, 1, "Idle keys=active,key.v2 active=v2"},
		{"abort", []string{"abort", "app", "--yes", "--timeout", "2m"}, toWaiting, 1, "Waiting keys=active,key.v1,key.v2 active=v1"},
	}
	total := 0
	for _, seg := range segments {
		t.Run(seg.name, func(t *testing.T) {
			setup := func(h *testcluster.Helm) (string, string, map[string]int64) {
				ns := namespace(t, "crash", nil)
				fixture(t, ns)
				kc := p.kubeconfig(t, ns)
				seg.prepare(t, p, h, kc, ns)
				_, gens := endState(t, ns)
				return ns, kc, gens
			}
			ns, kc, gens0 := setup(helms[0])
			out, _, _ := p.run(t, helms[0], kc, 0, seg.args...)
			clean, gens := endState(t, ns)
			n := p.mutating
			if clean != seg.want {
				t.Fatalf("clean run ended %q, want %q\n%s", clean, seg.want, out)
			}
			for name, g := range gens {
				if g-gens0[name] != seg.restarts {
					t.Fatalf("clean run restarted %s %d times, want %d", name, g-gens0[name], seg.restarts)
				}
			}
			t.Logf("%s: %d mutating requests in a clean run", seg.name, n)
			total += n
			for k := 1; k <= n; k++ {
				h := helms[k%2]
				ns, kc, gens0 := setup(h)
				out, _, killed := p.run(t, h, kc, k, seg.args...)
				if !killed {
					t.Fatalf("k=%d: the run ended before its %d-th mutating request\n%s", k, k, out)
				}
				rerun, code, _ := p.run(t, h, kc, 0, seg.args...)
				got, gens := endState(t, ns)
				if got != seg.want {
					t.Fatalf("k=%d: after the crash and a rerun (exit %d) the state is %q, want %q\n%s", k, code, got, seg.want, rerun)
				}
				for name, g := range gens {
					if g-gens0[name] != seg.restarts {
						t.Fatalf("k=%d: %s restarted %d times, want %d\n%s", k, name, g-gens0[name], seg.restarts, rerun)
					}
				}
			}
		})
	}
	t.Logf("crash safety: N = %d mutating requests over the three segments; each one was a crash point", total)
}

// randReader is crypto/rand for the fixture's key.
type randReader struct{}

func (randReader) Read(b []byte) (int, error) { return cryptorand.Read(b) }
