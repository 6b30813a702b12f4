package helmenv

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func envMap(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnvReadsWhatHelmPasses(t *testing.T) {
	s := FromEnv(envMap(map[string]string{
		"HELM_NAMESPACE": "team-a", "HELM_KUBECONTEXT": "prod", "KUBECONFIG": "/k", "HELM_KUBETOKEN": "tok",
		"HELM_KUBEASUSER": "alice", "HELM_KUBEASGROUPS": "g1, g2", "HELM_KUBEAPISERVER": "https://api:6443",
		"HELM_KUBECAFILE": "/ca", "HELM_KUBEINSECURE_SKIP_TLS_VERIFY": "true", "HELM_KUBETLS_SERVER_NAME": "api.local",
		"HELM_DEBUG": "true", "HELM_BIN": "/usr/bin/helm4", "HELM_QPS": "7.5", "HELM_BURST_LIMIT": "42",
		"HELM_PLUGIN_DIR": "/p", "HELM_PLUGINS": "/ps", "HELM_DATA_HOME": "/d", "HELM_DRIVER": "configmap",
	}))
	want := Settings{Namespace: "team-a", KubeContext: "prod", KubeConfig: "/k", KubeToken: "tok", KubeAsUser: "alice",
		KubeAsGroups: []string{"g1", "g2"}, KubeAPIServer: "https://api:6443", KubeCAFile: "/ca", KubeInsecureSkipTLSVerify: true,
		KubeTLSServerName: "api.local", Debug: true, HelmBin: "/usr/bin/helm4", QPS: 7.5, Burst: 42, PluginDir: "/p",
		PluginsDir: "/ps", DataHome: "/d", Driver: "configmap", namespaceSet: true}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("FromEnv:\n got %+v\nwant %+v", s, want)
	}
	if FromEnv(envMap(nil)).HelmBin != "helm" {
		t.Fatal("HELM_BIN unset must fall back to helm on PATH")
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	s := FromEnv(envMap(map[string]string{"HELM_NAMESPACE": "from-env", "HELM_KUBECONTEXT": "env-ctx"}))
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	s.AddFlags(fs)
	if err := fs.Parse([]string{"-n", "from-flag", "--kube-as-group", "a", "--kube-as-group", "b"}); err != nil {
		t.Fatal(err)
	}
	if s.Namespace != "from-flag" || s.KubeContext != "env-ctx" || !reflect.DeepEqual(s.KubeAsGroups, []string{"a", "b"}) {
		t.Fatalf("after flags: %+v", s)
	}
}

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://one:6443"}
- name: c2
  cluster: {server: "https://two:6443"}
users:
- name: u
  user: {token: file-token}
contexts:
- name: one
  context: {cluster: c, user: u, namespace: ns-one}
- name: two
  context: {cluster: c2, user: u}
current-context: one
`

func TestRESTConfigAndNamespace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	s := FromEnv(envMap(map[string]string{"KUBECONFIG": path, "HELM_QPS": "9"}))
	if ns := s.ResolveNamespace(); ns != "ns-one" {
		t.Fatalf("namespace from the context = %q, want ns-one", ns)
	}
	cfg, err := s.RESTConfig()
	if err != nil || cfg.Host != "https://one:6443" || cfg.BearerToken != "file-token" || cfg.QPS != 9 {
		t.Fatalf("RESTConfig: %v %+v", err, cfg)
	}
	s = FromEnv(envMap(map[string]string{"KUBECONFIG": path, "HELM_KUBECONTEXT": "two", "HELM_KUBETOKEN": "override", "HELM_KUBEASUSER": "bob"}))
	if ns := s.ResolveNamespace(); ns != "default" {
		t.Fatalf("namespace without one in the context = %q, want default", ns)
	}
	cfg, err = s.RESTConfig()
	if err != nil || cfg.Host != "https://two:6443" || cfg.BearerToken != "override" || cfg.Impersonate.UserName != "bob" {
		t.Fatalf("RESTConfig with overrides: %v %+v", err, cfg)
	}
	s = FromEnv(envMap(map[string]string{"KUBECONFIG": path, "HELM_NAMESPACE": "explicit"}))
	if s.ResolveNamespace() != "explicit" {
		t.Fatal("HELM_NAMESPACE must win over the context's namespace")
	}
}

// Every setting reaches the child Helm except debug, which is always off there: a helm upgrade in debug mode prints
// the release it rendered, key bytes included (the e2e TestNoCommandMakesHelmPrintKeys shows it on both Helms).
func TestEnvironRoundTrips(t *testing.T) {
	in := map[string]string{"HELM_NAMESPACE": "n", "HELM_KUBECONTEXT": "c", "KUBECONFIG": "/k", "HELM_KUBEASGROUPS": "a,b", "HELM_DEBUG": "true"}
	s := FromEnv(envMap(in))
	in["HELM_DEBUG"] = "false"
	out := map[string]string{}
	for _, kv := range s.Environ() {
		for i := range kv {
			if kv[i] == '=' {
				out[kv[:i]] = kv[i+1:]
				break
			}
		}
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("Environ: got %v, want %v", out, in)
	}
}

// Help must never print a value that came from the environment: HELM_KUBETOKEN is a credential.
func TestHelpShowsNoEnvironmentValues(t *testing.T) {
	s := FromEnv(envMap(map[string]string{"HELM_KUBETOKEN": "s3cr3t-token", "HELM_NAMESPACE": "ns-from-env", "KUBECONFIG": "/very/private",
		"HELM_KUBEASGROUPS": "grp", "HELM_DEBUG": "true", "HELM_KUBEINSECURE_SKIP_TLS_VERIFY": "true"}))
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	s.AddFlags(fs)
	usage := fs.FlagUsages()
	for _, secret := range []string{"s3cr3t-token", "ns-from-env", "/very/private", "grp", "(default true)"} {
		if strings.Contains(usage, secret) {
			t.Fatalf("help shows %q:\n%s", secret, usage)
		}
	}
	if err := fs.Parse(nil); err != nil || s.KubeToken != "s3cr3t-token" || s.Namespace != "ns-from-env" || !s.Debug {
		t.Fatalf("environment values must still apply: %v %+v", err, s)
	}
}
