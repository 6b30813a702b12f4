// Package actiontest builds action.Configs for fast tests: a fake clientset holding the objects a test injects,
// a fixed API-server clock, a fixed identity and rotation id, and a Helm runner that records its command lines and
// answers from a script. It proves command output and exit codes; behaviour against a real API server and real
// Helm is proven by test/e2e.
package actiontest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/tracebloc/helm-rotate-key/internal/action"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
	"github.com/tracebloc/helm-rotate-key/internal/helmexec"
	"github.com/tracebloc/helm-rotate-key/internal/kube"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// Now is the API server's time in every fake cluster.
var Now = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// Namespace is the namespace of the fake release.
const Namespace = "team"

// Env is a fake environment: HELM_NAMESPACE and HELM_BIN set as Helm sets them for a plugin.
func Env(extra map[string]string) func(string) string {
	env := map[string]string{"HELM_NAMESPACE": Namespace, "HELM_BIN": "helm"}
	for k, v := range extra {
		env[k] = v
	}
	return func(k string) string { return env[k] }
}

// Fixture is one fake world: the cluster's objects, the Helm script, and the streams.
type Fixture struct {
	Client *fake.Clientset
	Helm   *Helm
	Out    bytes.Buffer
	ErrOut bytes.Buffer
	// Terminal makes stdin a terminal (for the confirmation prompt).
	Terminal bool
}

// New builds a fixture over objects. Every permission review is allowed (an authorizer says yes).
func New(objects ...runtime.Object) *Fixture {
	client := fake.NewClientset(objects...)
	client.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		review := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		review.Status.Allowed = true
		return true, review, nil
	})
	// The tracker ignores generateName: name Events as the API server would, so that every one is kept.
	events := 0
	client.PrependReactor("create", "events", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if e := a.(k8stesting.CreateAction).GetObject().(*corev1.Event); e.Name == "" {
			events++
			e.Name = fmt.Sprintf("%s%05d", e.GenerateName, events)
		}
		return false, nil, nil
	})
	return &Fixture{Client: client, Helm: &Helm{}}
}

// Config is the action.Config over the fixture; stdin is in.
func (f *Fixture) Config(in string, getenv func(string) string) *action.Config {
	settings := helmenv.FromEnv(getenv)
	clock := &localClock{t: Now}
	return &action.Config{
		Settings: &settings,
		Connect: func(namespace, secret string) (*kube.Keyring, error) {
			return &kube.Keyring{Cluster: &kube.Cluster{Client: f.Client, Namespace: namespace, Clock: func() time.Time { return Now }}, SecretName: secret}, nil
		},
		FindKeyrings: func(ctx context.Context) (kube.Fleet, error) {
			list, err := f.Client.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
			if err != nil {
				return kube.Fleet{}, err
			}
			var out []kube.KeyringSecret
			for _, s := range list.Items {
				if kube.IsKeyring(s.ObjectMeta, rotation.Prefix) {
					out = append(out, kube.KeyringSecret{Namespace: s.Namespace, Name: s.Name, Release: s.Labels["app.kubernetes.io/instance"], Annotations: s.Annotations, Data: s.Data})
				}
			}
			return kube.Fleet{Keyrings: out, Now: Now}, nil
		},
		Helm:       f.Helm,
		HelmAt:     func(bin string) helmexec.Runner { return f.Helm.At(bin) },
		In:         strings.NewReader(in),
		Out:        &f.Out,
		ErrOut:     &f.ErrOut,
		IsTerminal: func() bool { return f.Terminal },
		Identity: action.Identity{Holder: "op@laptop pid 4242", Actor: "op@laptop via rotate-key test", HolderAlive: func(string) bool { return true },
			Host: "laptop", HelmRunning: func(string) (int, bool) { return 0, false }},
		Rand:          zeroReader{},
		NewRotationID: func(time.Time) string { return "20261130T120000Z-a1b2c3" },
		LocalNow:      clock.now,
		Getenv:        getenv,
		Executable:    func() (string, error) { return "/plugins/rotate-key/bin/rotate-key", nil },
		Sleep:         clock.sleep,
	}
}

// localClock is this machine's clock in a test: it starts at Now and moves only when something sleeps, so a rollout
// deadline passes without waiting for it.
type localClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *localClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *localClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return ctx.Err()
}

// zeroReader is a deterministic key source: a fake cluster's keys need not be secret, and the output never shows
// them anyway (a golden file would catch it).
type zeroReader struct{}

func (zeroReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(i%251 + 1)
	}
	return len(b), nil
}

// Helm records every command line it is given and answers from its script.
type Helm struct {
	mu sync.Mutex
	// Calls are the command lines, "helm" or the binary's name first.
	Calls []string
	// Answer, when set, answers a call: stdout, and an exit code (0: success).
	Answer func(bin string, args []string) (string, int)
}

// At is the same recorder for another binary.
func (h *Helm) At(bin string) helmexec.Runner { return &binHelm{h: h, bin: bin} }

type binHelm struct {
	h   *Helm
	bin string
}

func (b *binHelm) Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return b.h.call(b.bin, args, stdout)
}

func (b *binHelm) Output(ctx context.Context, args ...string) ([]byte, error) {
	var out bytes.Buffer
	err := b.h.call(b.bin, args, &out)
	return out.Bytes(), err
}

// Run implements helmexec.Runner for $HELM_BIN.
func (h *Helm) Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return h.call("helm", args, stdout)
}

// Output implements helmexec.Runner for $HELM_BIN.
func (h *Helm) Output(ctx context.Context, args ...string) ([]byte, error) {
	var out bytes.Buffer
	err := h.call("helm", args, &out)
	return out.Bytes(), err
}

func (h *Helm) call(bin string, args []string, stdout io.Writer) error {
	h.mu.Lock()
	h.Calls = append(h.Calls, helmexec.Quote(append([]string{bin}, args...)))
	answer := h.Answer
	h.mu.Unlock()
	if answer == nil {
		return fmt.Errorf("fake helm: no answer scripted for %s", strings.Join(args, " "))
	}
	out, code := answer(bin, args)
	if stdout != nil {
		io.WriteString(stdout, out)
	}
	if code != 0 {
		return &helmexec.ExitError{Code: code, Args: args}
	}
	return nil
}

// Keyring is a keyring Secret with versions 1..n (n active unless active > 0), key.vN naming, and annotations.
func Keyring(name string, n, active int, annotations map[string]string) *corev1.Secret {
	if active == 0 {
		active = n
	}
	data := map[string][]byte{"active": []byte(fmt.Sprintf("v%d", active))}
	for v := 1; v <= n; v++ {
		sum := sha256.Sum256([]byte(fmt.Sprintf("%s key v%d", name, v))) // looks random to the keyring rules, same every run
		data[fmt.Sprintf("key.v%d", v)] = sum[:]
	}
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace, Annotations: annotations, ResourceVersion: "1",
		Labels: map[string]string{"app.kubernetes.io/instance": "app"}}, Data: data}
}

// Release is the storage record (driver "secret") of revision rev of release name, with values and hooks: the
// JSON Helm writes, gzipped and base64-encoded as its storage drivers do.
func Release(name string, rev int, status string, values map[string]any, hooks ...string) *corev1.Secret {
	return record(name, rev, status, "Upgrade complete", values, "", hooks)
}

// ReleaseDescribed is Release with the description `helm history` shows (the hook path's run token, say).
func ReleaseDescribed(name string, rev int, status, description string, values map[string]any, hooks ...string) *corev1.Secret {
	return record(name, rev, status, description, values, "", hooks)
}

// ReleaseRendering is the storage record of a revision whose rendered manifest is manifest.
func ReleaseRendering(name string, rev int, status, manifest string) *corev1.Secret {
	return record(name, rev, status, "Upgrade complete", nil, manifest, nil)
}

func record(name string, rev int, status, description string, values map[string]any, manifest string, hooks []string) *corev1.Secret {
	type hook struct {
		Kind     string `json:"kind"`
		Manifest string `json:"manifest"`
	}
	var hs []hook
	for _, m := range hooks {
		hs = append(hs, hook{Kind: "Job", Manifest: m})
	}
	rel := map[string]any{"name": name, "namespace": Namespace, "version": rev,
		"info":   map[string]any{"status": status, "description": description},
		"chart":  map[string]any{"metadata": map[string]any{"name": "example-app", "version": "0.1.0", "appVersion": "1.0.0"}, "values": map[string]any{}},
		"config": values, "hooks": hs, "manifest": manifest}
	js, _ := json.Marshal(rel)
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(js)
	zw.Close()
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("sh.helm.release.v1.%s.v%d", name, rev), Namespace: Namespace,
		Labels: map[string]string{"owner": "helm", "name": name, "version": fmt.Sprint(rev), "status": status}},
		Data: map[string][]byte{"release": []byte(base64.StdEncoding.EncodeToString(b.Bytes()))}}
}

// HookJob is the manifest of a rotation hook Job of the library chart, as a release record stores it.
func HookJob(step string, weight int, secret string) string {
	return fmt.Sprintf("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: app-rotate-key-%s\n  annotations:\n    helm.sh/hook: post-upgrade\n    helm.sh/hook-weight: %q\n    rotate-key.tracebloc.io/hook-step: %s\nspec:\n  template:\n    spec:\n      containers:\n      - name: rotate-key\n        args: [hook, step, %s, --secret, %s]\n", step, fmt.Sprint(weight), step, step, secret)
}
