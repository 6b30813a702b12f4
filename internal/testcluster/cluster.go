package testcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Options configure Start.
type Options struct {
	// KwokNodes is how many kwok-managed fake nodes to create (default 2).
	KwokNodes int
	// Executables maps the first word of a runner pod's command (its base name) to a local program; Start adds
	// "rotate-key" → the binary it builds from this repository.
	Executables map[string]string
	// VolumeRefresh is the delay between a Secret's change and its volumes' files changing in the runner's
	// serving pods (default 0–90 s, a kubelet's with its default sync period: longer than the tests' 60 s token
	// TTL, so a rotation that counted on the refresh instead of restarting pods would be caught).
	VolumeRefresh VolumeRefresh
	// Logf receives progress lines (default: discard).
	Logf func(format string, args ...any)
}

// Cluster is a running cluster-in-a-box.
type Cluster struct {
	Tools Tools
	// Root is the repository checkout; Binary the rotate-key binary built from it (Root/bin/rotate-key).
	Root   string
	Binary string
	// Dir holds the cluster's files: logs/, kubeconfigs, the runner's work folders.
	Dir string
	// Kubeconfig is the path of a cluster-admin (system:masters) kubeconfig; Config and Client use it.
	Kubeconfig string
	Config     *rest.Config
	Client     kubernetes.Interface
	// CertDir is the API server's certificate folder (apiserver.crt, sa-signer.key).
	CertDir string

	env    *envtest.Environment
	procs  []*process
	runner *runner
	cancel context.CancelFunc
	wg     sync.WaitGroup
	logf   func(string, ...any)
	goEnv  []string
}

// Start builds the rotate-key binary, starts every component, and returns when the nodes are Ready and the
// default ServiceAccount exists. On error, whatever was started is stopped.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	began := time.Now()
	if opts.KwokNodes == 0 {
		opts.KwokNodes = 2
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	tools, err := FindTools(root)
	if err != nil {
		return nil, err
	}
	reapOrphans(tools.Dir, logf)
	dir, err := os.MkdirTemp("", "rotate-key-cluster-")
	if err != nil {
		return nil, err
	}
	c = &Cluster{Tools: tools, Root: root, Dir: dir, logf: logf}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if c.Binary, err = BuildBinary(root); err != nil {
		return nil, err
	}
	tokenApp := filepath.Join(dir, "tokenapp")
	if out, err := goBuild(root, tokenApp, "./test/tokenapp"); err != nil {
		return nil, fmt.Errorf("testcluster: building the token app: %w\n%s", err, out)
	}
	if c.goEnv, err = goCaches(); err != nil {
		return nil, err
	}
	for _, sub := range []string{"assets", "logs", "runner"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	for name, target := range map[string]string{"etcd": tools.Etcd, "kube-apiserver": tools.APIServer, "kubectl": tools.Kubectl} {
		if err := os.Symlink(target, filepath.Join(dir, "assets", name)); err != nil {
			return nil, err
		}
	}

	c.env = &envtest.Environment{BinaryAssetsDirectory: filepath.Join(dir, "assets"), ControlPlaneStartTimeout: 90 * time.Second, ControlPlaneStopTimeout: 30 * time.Second}
	api := c.env.ControlPlane.GetAPIServer()
	// envtest disables the ServiceAccount admission plugin; real clusters run it, and the runner needs pods to
	// name their ServiceAccount so that it can bind a token to them.
	api.Configure().Disable("disable-admission-plugins")
	if _, err := c.env.Start(); err != nil {
		return nil, fmt.Errorf("testcluster: starting etcd and kube-apiserver: %w", err)
	}
	c.CertDir = api.CertDir
	logf("testcluster: etcd and kube-apiserver up in %s", time.Since(began).Round(time.Millisecond))

	admin, err := c.env.AddUser(envtest.User{Name: "rotate-key-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return nil, err
	}
	c.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	c.Config = admin.Config()
	// Every test of a run shares this identity (and the runner plays a kubelet for dozens of pods with it):
	// client-go's default 5 requests/s would throttle them into timeouts.
	c.Config.QPS, c.Config.Burst = 200, 400
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return nil, err
	}

	logs := filepath.Join(dir, "logs")
	cm, err := startProcess("kube-controller-manager", tools.ControllerManager, logs,
		"--kubeconfig="+c.Kubeconfig, "--leader-elect=false", "--secure-port=0",
		// As kubeadm does: each controller acts as its own ServiceAccount (e.g. namespace-controller), so admission
		// policies and RBAC see the identities a real cluster has.
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+filepath.Join(c.CertDir, "sa-signer.key"),
		"--root-ca-file="+filepath.Join(c.CertDir, "apiserver.crt"),
		// nodeipam, attachdetach and ttl need cloud or kubelet pieces this cluster does not have; nodelifecycle
		// stays on: it lifts the not-ready taint once a node reports Ready.
		"--controllers=*,-nodeipam,-attachdetach,-ttl")
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, cm)
	sched, err := startProcess("kube-scheduler", tools.Scheduler, logs, "--kubeconfig="+c.Kubeconfig, "--leader-elect=false", "--secure-port=0")
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, sched)

	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	if err := c.createKwokNodes(ctx, opts.KwokNodes); err != nil {
		return nil, err
	}
	kwok, err := startProcess("kwok", tools.Kwok, logs, "--kubeconfig="+c.Kubeconfig, "--manage-all-nodes=false",
		"--manage-nodes-with-label-selector="+KwokNodeLabel+"=kwok", "--server-address=", "--node-lease-duration-seconds=40",
		"--config="+tools.KwokStages)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, kwok)

	executables := map[string]string{"rotate-key": c.Binary, "tokenapp": tokenApp}
	for k, v := range opts.Executables {
		executables[k] = v
	}
	if opts.VolumeRefresh == (VolumeRefresh{}) {
		opts.VolumeRefresh = VolumeRefresh{Min: 0, Max: 90 * time.Second}
	}
	podNet, err := claimPodNetwork()
	if err != nil {
		return nil, err
	}
	c.runner = newRunner(c.Client, c.Config, executables, filepath.Join(dir, "runner"), opts.VolumeRefresh, podNet, logf)
	if err := c.runner.registerNode(ctx); err != nil {
		return nil, err
	}
	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.runner.run(runCtx) }()

	if err := c.waitReady(ctx, opts.KwokNodes); err != nil {
		return nil, err
	}
	logf("testcluster: ready in %s (kubeconfig %s)", time.Since(began).Round(time.Millisecond), c.Kubeconfig)
	return c, nil
}

// waitReady waits until every node is Ready without the not-ready taint and the default ServiceAccount exists.
func (c *Cluster) waitReady(ctx context.Context, kwokNodes int) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, p := range c.procs {
			if err := p.exited(); err != nil {
				return false, err
			}
		}
		nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		ready := 0
		for _, n := range nodes.Items {
			if nodeSchedulable(&n) {
				ready++
			}
		}
		if ready < kwokNodes+1 {
			last = fmt.Sprintf("%d of %d nodes Ready and schedulable", ready, kwokNodes+1)
			return false, nil
		}
		if _, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			last = "default ServiceAccount: " + err.Error()
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("testcluster: cluster not ready (%s): %w; logs in %s", last, err, filepath.Join(c.Dir, "logs"))
	}
	return nil
}

func nodeSchedulable(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
			return false
		}
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Stop shuts every component down and waits for each process to exit. It is safe to call more than once.
func (c *Cluster) Stop() {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	if c.runner != nil {
		c.runner.stopAll()
		c.runner.net.release()
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop(10 * time.Second)
	}
	c.procs = nil
	if c.env != nil {
		if err := c.env.Stop(); err != nil {
			c.logf("testcluster: stopping etcd and kube-apiserver: %v", err)
		}
		c.env = nil
	}
}

// PIDs returns the process IDs of every component still running (for leak checks).
func (c *Cluster) PIDs() []int {
	var pids []int
	for _, p := range c.procs {
		if p.exited() == nil {
			pids = append(pids, p.cmd.Process.Pid)
		}
	}
	return pids
}

// PodLogs returns the combined output of every container the runner executed for a pod so far.
func (c *Cluster) PodLogs(namespace, pod string) string { return c.runner.logsOf(namespace, pod) }

// NamespaceLogs returns the output of every pod the runner executed in namespace, deleted ones included (a hook
// Job recreated with before-hook-creation keeps its predecessor's log here), by pod name.
func (c *Cluster) NamespaceLogs(namespace string) map[string]string {
	return c.runner.logsIn(namespace)
}

// Namespace creates a namespace for one test, waits for its default ServiceAccount (pods need it once the
// ServiceAccount admission plugin is on), and returns its name.
func (c *Cluster) Namespace(ctx context.Context, prefix string, labels map[string]string) (string, error) {
	ns, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: labels}}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	return ns.Name, err
}

// goCaches returns GOCACHE, GOMODCACHE and GOPATH as `go env` resolves them for this process.
func goCaches() ([]string, error) {
	names := []string{"GOCACHE", "GOMODCACHE", "GOPATH"}
	out, err := exec.Command("go", append([]string{"env"}, names...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("testcluster: go env: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(names) {
		return nil, fmt.Errorf("testcluster: go env printed %q", out)
	}
	env := make([]string, len(names))
	for i, n := range names {
		env[i] = n + "=" + lines[i]
	}
	return env, nil
}

// BuildBinary builds this repository's rotate-key into root/bin (where the installed plugin runs it from) with the
// rotate-key-guard symlink beside it, and returns its path.
func BuildBinary(root string) (string, error) {
	bin := filepath.Join(root, "bin", "rotate-key")
	if out, err := goBuild(root, bin, "./cmd/rotate-key"); err != nil {
		return "", fmt.Errorf("testcluster: building rotate-key: %w\n%s", err, out)
	}
	guard := filepath.Join(root, "bin", "rotate-key-guard")
	if err := os.Remove(guard); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	return bin, os.Symlink("rotate-key", guard)
}

func goBuild(root, out, pkg string) ([]byte, error) {
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = root
	return cmd.CombinedOutput()
}
