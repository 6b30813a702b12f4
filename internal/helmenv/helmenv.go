// Package helmenv turns what Helm hands a plugin into one Settings value. Helm consumes -n, --kube-context,
// --kubeconfig, --kube-* and --debug wherever they stand on its command line and passes them to a plugin only as
// HELM_* environment variables; a standalone run of the binary gets the same settings as flags. Reading both here
// means every command sees exactly the namespace, context and credentials of the surrounding `helm` invocation.
package helmenv

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Settings are the Kubernetes and Helm settings of one run. Flags override the environment.
type Settings struct {
	Namespace                 string
	KubeContext               string
	KubeConfig                string
	KubeToken                 string
	KubeAsUser                string
	KubeAsGroups              []string
	KubeAPIServer             string
	KubeCAFile                string
	KubeInsecureSkipTLSVerify bool
	KubeTLSServerName         string
	QPS                       float32
	Burst                     int
	Debug                     bool
	// HelmBin is the Helm CLI that invoked the plugin ($HELM_BIN); "helm" from PATH when run standalone.
	HelmBin string
	// PluginDir is the installed plugin's folder ($HELM_PLUGIN_DIR); empty when run standalone.
	PluginDir string
	// PluginsDir is Helm's plugins folder ($HELM_PLUGINS) and DataHome its data home ($HELM_DATA_HOME).
	PluginsDir string
	DataHome   string
	// Driver is Helm's release storage driver ($HELM_DRIVER; empty means "secret").
	Driver string

	// namespaceSet records whether a namespace came from the environment or a flag, as opposed to the kubeconfig.
	namespaceSet bool
}

// FromEnv reads the variables Helm sets for a plugin. getenv is os.Getenv in production and a map in tests.
func FromEnv(getenv func(string) string) Settings {
	s := Settings{
		Namespace:                 getenv("HELM_NAMESPACE"),
		KubeContext:               getenv("HELM_KUBECONTEXT"),
		KubeConfig:                getenv("KUBECONFIG"),
		KubeToken:                 getenv("HELM_KUBETOKEN"),
		KubeAsUser:                getenv("HELM_KUBEASUSER"),
		KubeAsGroups:              splitList(getenv("HELM_KUBEASGROUPS")),
		KubeAPIServer:             getenv("HELM_KUBEAPISERVER"),
		KubeCAFile:                getenv("HELM_KUBECAFILE"),
		KubeInsecureSkipTLSVerify: parseBool(getenv("HELM_KUBEINSECURE_SKIP_TLS_VERIFY")),
		KubeTLSServerName:         getenv("HELM_KUBETLS_SERVER_NAME"),
		Debug:                     parseBool(getenv("HELM_DEBUG")),
		HelmBin:                   getenv("HELM_BIN"),
		PluginDir:                 getenv("HELM_PLUGIN_DIR"),
		PluginsDir:                getenv("HELM_PLUGINS"),
		DataHome:                  getenv("HELM_DATA_HOME"),
		Driver:                    getenv("HELM_DRIVER"),
	}
	if q, err := strconv.ParseFloat(getenv("HELM_QPS"), 32); err == nil {
		s.QPS = float32(q)
	}
	if b, err := strconv.Atoi(getenv("HELM_BURST_LIMIT")); err == nil {
		s.Burst = b
	}
	if s.HelmBin == "" {
		s.HelmBin = "helm"
	}
	s.namespaceSet = s.Namespace != ""
	return s
}

// AddFlags registers Helm's own global flags, so that a standalone `rotate-key` accepts what `helm` accepts.
// The current values (read from the environment) are the defaults: a flag given on the command line wins.
func (s *Settings) AddFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&s.Namespace, "namespace", "n", s.Namespace, "namespace of the release (default: the kubeconfig context's, then \"default\") [$HELM_NAMESPACE]")
	fs.StringVar(&s.KubeContext, "kube-context", s.KubeContext, "name of the kubeconfig context to use [$HELM_KUBECONTEXT]")
	fs.StringVar(&s.KubeConfig, "kubeconfig", s.KubeConfig, "path to the kubeconfig file [$KUBECONFIG]")
	fs.StringVar(&s.KubeToken, "kube-token", s.KubeToken, "bearer token used for authentication [$HELM_KUBETOKEN]")
	fs.StringVar(&s.KubeAsUser, "kube-as-user", s.KubeAsUser, "username to impersonate for the operation [$HELM_KUBEASUSER]")
	fs.StringArrayVar(&s.KubeAsGroups, "kube-as-group", s.KubeAsGroups, "group to impersonate, can be repeated [$HELM_KUBEASGROUPS]")
	fs.StringVar(&s.KubeAPIServer, "kube-apiserver", s.KubeAPIServer, "the address and the port of the Kubernetes API server [$HELM_KUBEAPISERVER]")
	fs.StringVar(&s.KubeCAFile, "kube-ca-file", s.KubeCAFile, "the certificate authority file for the Kubernetes API server [$HELM_KUBECAFILE]")
	fs.BoolVar(&s.KubeInsecureSkipTLSVerify, "kube-insecure-skip-tls-verify", s.KubeInsecureSkipTLSVerify, "skip the API server's certificate check (insecure) [$HELM_KUBEINSECURE_SKIP_TLS_VERIFY]")
	fs.StringVar(&s.KubeTLSServerName, "kube-tls-server-name", s.KubeTLSServerName, "server name for the API server's certificate check [$HELM_KUBETLS_SERVER_NAME]")
	fs.BoolVar(&s.Debug, "debug", s.Debug, "verbose output on stderr (never key material) [$HELM_DEBUG]")
	// The values came from the environment: help must not print them as defaults (HELM_KUBETOKEN is a credential).
	for _, name := range []string{"namespace", "kube-context", "kubeconfig", "kube-token", "kube-as-user", "kube-apiserver",
		"kube-ca-file", "kube-tls-server-name"} {
		fs.Lookup(name).DefValue = ""
	}
	fs.Lookup("kube-as-group").DefValue = "[]"
	fs.Lookup("kube-insecure-skip-tls-verify").DefValue = "false"
	fs.Lookup("debug").DefValue = "false"
}

// ClientConfig is the kubeconfig view these settings select: an explicit file, else the usual KUBECONFIG/~/.kube
// rules, else the in-cluster ServiceAccount (how hook Jobs run), with Helm's overrides applied on top.
func (s *Settings) ClientConfig() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if s.KubeConfig != "" && !strings.Contains(s.KubeConfig, pathListSeparator) {
		rules.ExplicitPath = s.KubeConfig
	} else if s.KubeConfig != "" {
		rules.Precedence = strings.Split(s.KubeConfig, pathListSeparator)
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: s.KubeContext}
	overrides.AuthInfo.Token = s.KubeToken
	overrides.AuthInfo.Impersonate = s.KubeAsUser
	overrides.AuthInfo.ImpersonateGroups = s.KubeAsGroups
	overrides.ClusterInfo.Server = s.KubeAPIServer
	overrides.ClusterInfo.CertificateAuthority = s.KubeCAFile
	overrides.ClusterInfo.InsecureSkipTLSVerify = s.KubeInsecureSkipTLSVerify
	overrides.ClusterInfo.TLSServerName = s.KubeTLSServerName
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
}

// RESTConfig returns the client configuration for the API server, with Helm's QPS and burst limits.
func (s *Settings) RESTConfig() (*rest.Config, error) {
	cfg, err := s.ClientConfig().ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("no usable Kubernetes configuration (checked --kubeconfig, $KUBECONFIG, ~/.kube/config and the in-cluster ServiceAccount): %w", err)
	}
	if s.QPS > 0 {
		cfg.QPS = s.QPS
	}
	if s.Burst > 0 {
		cfg.Burst = s.Burst
	}
	cfg.UserAgent = "helm-rotate-key"
	return cfg, nil
}

// ResolveNamespace returns the namespace to work in: the flag or $HELM_NAMESPACE, else the kubeconfig context's,
// else "default" — the same order Helm uses.
func (s *Settings) ResolveNamespace() string {
	if s.Namespace != "" {
		return s.Namespace
	}
	if ns, _, err := s.ClientConfig().Namespace(); err == nil && ns != "" {
		return ns
	}
	return "default"
}

// ClusterFlags returns the namespace, context and kubeconfig as --flag=value arguments, which helm and rotate-key
// both read: for a child helm command line, and for the guard's --post-renderer-args.
func (s *Settings) ClusterFlags(namespace string) []string {
	flags := []string{"--namespace=" + namespace}
	if s.KubeContext != "" {
		flags = append(flags, "--kube-context="+s.KubeContext)
	}
	if s.KubeConfig != "" {
		flags = append(flags, "--kubeconfig="+s.KubeConfig)
	}
	return flags
}

// Environ returns these settings as the HELM_* variables Helm would set, for running $HELM_BIN as a child with the
// same namespace, context and credentials — debug excepted (it is always off for the child).
func (s *Settings) Environ() []string {
	env := []string{"HELM_NAMESPACE=" + s.ResolveNamespace()}
	add := func(k, v string) {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	add("HELM_KUBECONTEXT", s.KubeContext)
	add("KUBECONFIG", s.KubeConfig)
	add("HELM_KUBETOKEN", s.KubeToken)
	add("HELM_KUBEASUSER", s.KubeAsUser)
	add("HELM_KUBEASGROUPS", strings.Join(s.KubeAsGroups, ","))
	add("HELM_KUBEAPISERVER", s.KubeAPIServer)
	add("HELM_KUBECAFILE", s.KubeCAFile)
	add("HELM_KUBETLS_SERVER_NAME", s.KubeTLSServerName)
	if s.KubeInsecureSkipTLSVerify {
		env = append(env, "HELM_KUBEINSECURE_SKIP_TLS_VERIFY=true")
	}
	// Never HELM_DEBUG=true, which the child would inherit from the helm that ran the plugin: a helm upgrade in debug
	// mode prints the release it rendered, and a keyring rendered with lookup holds its key bytes there.
	return append(env, "HELM_DEBUG=false")
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func parseBool(v string) bool {
	b, _ := strconv.ParseBool(v)
	return b
}
