package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// liveObjects returns, per object of the example release, the JSON of what an upgrade could change (labels,
// annotations, and data or spec) plus its resourceVersion.
func liveObjects(t *testing.T, ns, release string) (map[string][]byte, map[string]string) {
	t.Helper()
	ctx := context.Background()
	content := map[string][]byte{}
	versions := map[string]string{}
	add := func(key string, meta metav1.ObjectMeta, body any) {
		b, err := json.Marshal(struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
			Body        any               `json:"body"`
		}{meta.Labels, meta.Annotations, body})
		if err != nil {
			t.Fatal(err)
		}
		content[key], versions[key] = b, meta.ResourceVersion
	}
	s, err := cluster.Client.CoreV1().Secrets(ns).Get(ctx, release+"-requests-proxy-admin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	add("Secret", s.ObjectMeta, s.Data)
	for _, name := range []string{"jobs-manager", "requests-proxy"} {
		d, err := cluster.Client.AppsV1().Deployments(ns).Get(ctx, release+"-"+name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		add("Deployment/"+name, d.ObjectMeta, d.Spec)
	}
	svc, err := cluster.Client.CoreV1().Services(ns).Get(ctx, release+"-requests-proxy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	add("Service", svc.ObjectMeta, svc.Spec)
	return content, versions
}

// identityRenderer makes a post-renderer named identity-renderer that returns its input unchanged (`cat`): an
// executable on PATH for Helm 3, a postrenderer/v1 plugin for Helm 4. It is the reference the guard is compared to:
// Helm 4 re-serialises post-rendered manifests itself, so only a comparison with a known identity proves that the
// guard changed nothing.
func identityRenderer(t *testing.T, h *testcluster.Helm) {
	t.Helper()
	if h.Major == 3 {
		if err := os.WriteFile(filepath.Join(h.GuardDir, "identity-renderer"), []byte("#!/bin/sh\nexec cat\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return
	}
	dir := filepath.Join(t.TempDir(), "identity-renderer")
	plugin := "apiVersion: v1\ntype: postrenderer/v1\nname: identity-renderer\nversion: 0.0.1\nruntime: subprocess\nruntimeConfig:\n  platformCommand:\n    - command: cat\n"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "plugin.yaml"), []byte(plugin), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := h.Run(context.Background(), "plugin", "install", dir); err != nil {
		t.Fatalf("installing the identity post-renderer: %v\n%s", err, out)
	}
}

// TestGuardRoundTrip upgrades a release through `--post-renderer rotate-key-guard` on Helm 3 (an executable on
// PATH) and Helm 4 (the postrenderer/v1 plugin) and checks that the guard changed nothing: the manifest Helm stored
// is byte-identical to the one stored after an upgrade through an identity post-renderer, and so is every applied
// object. A control run with a bad guard argument must fail, which proves that Helm really ran the guard.
func TestGuardRoundTrip(t *testing.T) {
	parallel(t, 45*time.Second) // its own namespaces and Helm folders: nothing shared with the other tests
	for _, major := range helmMajors() {
		t.Run(fmt.Sprintf("helm%d", major), func(t *testing.T) {
			ctx := context.Background()
			h := newHelm(t, major)
			identityRenderer(t, h)
			ns := namespace(t, fmt.Sprintf("guard-h%d", major), nil)
			if out, err := installExample(ctx, h, ns, "app", "--wait", "--timeout", "2m"); err != nil {
				t.Fatalf("install: %v\n%s", err, out)
			}
			if out, err := h.Run(ctx, "-n", ns, "upgrade", "app", exampleChart(), "--reuse-values", "--post-renderer", "identity-renderer"); err != nil {
				t.Fatalf("upgrade through the identity post-renderer: %v\n%s", err, out)
			}
			before, rvBefore := liveObjects(t, ns, "app")

			out, err := h.Run(ctx, "-n", ns, "upgrade", "app", exampleChart(), "--reuse-values",
				"--post-renderer", "rotate-key-guard", "--post-renderer-args", "--release=app", "--post-renderer-args", "--namespace="+ns)
			if err != nil {
				t.Fatalf("upgrade through the guard: %v\n%s", err, out)
			}
			reference, err1 := h.Run(ctx, "-n", ns, "get", "manifest", "app", "--revision", "2")
			guarded, err2 := h.Run(ctx, "-n", ns, "get", "manifest", "app", "--revision", "3")
			if err1 != nil || err2 != nil || reference == "" {
				t.Fatalf("get manifest: %v %v", err1, err2)
			}
			if reference != guarded {
				t.Fatalf("the manifest stored after the guard differs from the identity post-renderer's (%d vs %d bytes)", len(guarded), len(reference))
			}
			after, rvAfter := liveObjects(t, ns, "app")
			for key := range before {
				if !bytes.Equal(before[key], after[key]) {
					t.Errorf("%s changed across the guarded upgrade (%d bytes before, %d after)", key, len(before[key]), len(after[key]))
				}
			}
			t.Logf("helm%d: %d objects byte-identical; Secret resourceVersion %s -> %s; stored manifest %d bytes identical to the identity's",
				major, len(before), rvBefore["Secret"], rvAfter["Secret"], len(guarded))

			out, err = h.Run(ctx, "-n", ns, "upgrade", "app", exampleChart(), "--reuse-values",
				"--post-renderer", "rotate-key-guard", "--post-renderer-args", "--no-such-guard-flag")
			if err == nil {
				t.Fatalf("an upgrade whose guard exits non-zero succeeded: Helm did not run the guard\n%s", out)
			}
			if major == 3 && !strings.Contains(out, "unknown flag: --no-such-guard-flag") {
				t.Fatalf("Helm 3 shows the post-renderer's stderr; got:\n%s", out)
			}
			again, _ := liveObjects(t, ns, "app")
			for key := range before {
				if !bytes.Equal(before[key], again[key]) {
					t.Errorf("%s changed although the guard refused", key)
				}
			}
		})
	}
}
