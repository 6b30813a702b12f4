package testcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// runner plays the kubelet of the runner node: it executes the pods bound to it as local processes (see the
// package documentation for the contract).
type runner struct {
	client      kubernetes.Interface
	config      *rest.Config
	executables map[string]string
	dir         string
	logf        func(string, ...any)

	mu      sync.Mutex
	started map[types.UID]bool
	logs    map[string]*bytes.Buffer
	running map[types.UID]*exec.Cmd
	// services are the long-running pods being served (see service.go); nextIP numbers their addresses.
	services map[types.UID]*servicePod
	net      *podNetwork
	nextIP   int
	refresh  VolumeRefresh
	wg       sync.WaitGroup
}

func newRunner(client kubernetes.Interface, config *rest.Config, executables map[string]string, dir string, refresh VolumeRefresh, net *podNetwork, logf func(string, ...any)) *runner {
	return &runner{client: client, config: config, executables: executables, dir: dir, logf: logf, refresh: refresh, net: net,
		started: map[types.UID]bool{}, logs: map[string]*bytes.Buffer{}, running: map[types.UID]*exec.Cmd{}, services: map[types.UID]*servicePod{}}
}

// run watches the runner node's pods and heartbeats until ctx ends.
func (r *runner) run(ctx context.Context) {
	factory := informers.NewSharedInformerFactoryWithOptions(r.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", RunnerNode).String()
	}))
	informer := factory.Core().V1().Pods().Informer()
	handle := func(obj any) {
		if pod, ok := obj.(*corev1.Pod); ok {
			r.observe(ctx, pod)
		}
	}
	_, _ = informer.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: handle, UpdateFunc: func(_, obj any) { handle(obj) }})
	// Secret volumes follow their Secret (after the refresh delay), as a kubelet's do.
	secrets := informers.NewSharedInformerFactory(r.client, 0)
	_, _ = secrets.Core().V1().Secrets().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: func(_, obj any) {
		if s, ok := obj.(*corev1.Secret); ok {
			r.secretChanged(ctx, s)
		}
	}})
	factory.Start(ctx.Done())
	secrets.Start(ctx.Done())
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			factory.Shutdown()
			secrets.Shutdown()
			return
		case <-tick.C:
			if err := r.heartbeat(ctx); err != nil && ctx.Err() == nil {
				r.logf("testcluster: runner heartbeat: %v", err)
			}
		}
	}
}

func (r *runner) observe(ctx context.Context, pod *corev1.Pod) {
	r.mu.Lock()
	service := r.services[pod.UID]
	r.mu.Unlock()
	if pod.DeletionTimestamp != nil && service != nil {
		r.terminate(ctx, service, pod)
		return
	}
	if pod.DeletionTimestamp != nil {
		r.mu.Lock()
		if cmd := r.running[pod.UID]; cmd != nil && cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		r.mu.Unlock()
		// No kubelet confirms the deletion: do it, as a kubelet does once the containers are gone.
		_ = r.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &pod.UID}})
		return
	}
	if pod.Status.Phase != corev1.PodPending && pod.Status.Phase != "" {
		return
	}
	r.mu.Lock()
	if r.started[pod.UID] {
		r.mu.Unlock()
		return
	}
	r.started[pod.UID] = true
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if pod.Spec.RestartPolicy == corev1.RestartPolicyAlways {
			r.serve(ctx, pod.DeepCopy())
			return
		}
		r.execute(ctx, pod.DeepCopy())
	}()
}

// stopAll kills every process still running and waits for the pod goroutines.
func (r *runner) stopAll() {
	r.mu.Lock()
	for _, cmd := range r.running {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	for _, s := range r.services {
		s.mu.Lock()
		s.terminating = true
		for _, cmd := range s.procs {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		s.mu.Unlock()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// logsIn returns the output of every pod the runner executed in namespace (deleted pods included), by pod name.
func (r *runner) logsIn(namespace string) map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for key, b := range r.logs {
		if ns, pod, _ := strings.Cut(key, "/"); ns == namespace {
			out[pod] = b.String()
		}
	}
	return out
}

func (r *runner) logsOf(namespace, pod string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.logs[namespace+"/"+pod]; b != nil {
		return b.String()
	}
	return ""
}

// execute runs the pod's containers one after another and reports the outcome in the pod's status.
func (r *runner) execute(ctx context.Context, pod *corev1.Pod) {
	work := filepath.Join(r.dir, pod.Namespace+"_"+pod.Name+"_"+string(pod.UID))
	if err := os.MkdirAll(filepath.Join(work, "home"), 0o700); err != nil {
		r.logf("testcluster: runner: %v", err)
		return
	}
	started := metav1.Now()
	containers := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	statuses := make([]corev1.ContainerStatus, 0, len(containers))
	kubeconfig, setupErr := r.podKubeconfig(ctx, pod, work)
	r.setStatus(ctx, pod, corev1.PodRunning, started, runningStatuses(pod.Spec.Containers, started))
	failed := false
	for i, container := range containers {
		var status corev1.ContainerStatus
		if setupErr != nil {
			status = terminated(container, started, 127, "ContainerCannotRun", "runner: "+setupErr.Error())
		} else {
			status = r.runContainer(ctx, pod, container, work, kubeconfig, nil)
		}
		if i >= len(pod.Spec.InitContainers) {
			statuses = append(statuses, status)
		}
		if status.State.Terminated.ExitCode != 0 {
			failed = true
			break
		}
	}
	for _, container := range pod.Spec.Containers[len(statuses):] { // containers not reached after a failure
		statuses = append(statuses, terminated(container, started, 126, "NotStarted", "runner: an earlier container failed"))
	}
	phase := corev1.PodSucceeded
	if failed {
		phase = corev1.PodFailed
	}
	r.setStatus(ctx, pod, phase, started, statuses)
}

// runContainer executes one container as a local process and returns its terminated status.
func (r *runner) runContainer(ctx context.Context, pod *corev1.Pod, c corev1.Container, work, kubeconfig string, extraEnv []string) corev1.ContainerStatus {
	began := metav1.Now()
	fail := func(format string, args ...any) corev1.ContainerStatus {
		msg := "runner: " + fmt.Sprintf(format, args...)
		r.appendLog(pod, msg+"\n")
		return terminated(c, began, 127, "ContainerCannotRun", msg)
	}
	env, err := r.containerEnv(ctx, pod, c)
	if err != nil {
		return fail("container %q: %v", c.Name, err)
	}
	cmd, err := r.command(pod, c, append(append(env, extraEnv...), kubeconfigEnv(kubeconfig)...), work)
	if err != nil {
		return fail("%v", err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fail("container %q: starting %s: %v", c.Name, cmd.Path, err)
	}
	r.mu.Lock()
	r.running[pod.UID] = cmd
	r.mu.Unlock()
	err = cmd.Wait()
	r.mu.Lock()
	delete(r.running, pod.UID)
	r.mu.Unlock()
	r.appendLog(pod, out.String())
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
		if code < 0 {
			code = 137 // killed by a signal
		}
	} else if err != nil {
		return fail("container %q: %v", c.Name, err)
	}
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	msg := out.String()
	if len(msg) > 4096 {
		msg = msg[len(msg)-4096:]
	}
	return terminated(c, began, int32(code), reason, msg)
}

// command prepares a container's process: argv is its command and args with $(VAR) expanded, the program the local
// stand-in for argv[0], in its own process group (so that the whole group can be signalled).
func (r *runner) command(pod *corev1.Pod, c corev1.Container, env []string, work string) (*exec.Cmd, error) {
	lookup := func(name string) (string, bool) { return envLookup(env, name) }
	var argv []string
	for _, a := range append(append([]string{}, c.Command...), c.Args...) {
		argv = append(argv, expandKubeVars(a, lookup))
	}
	if len(c.Command) == 0 {
		return nil, fmt.Errorf("container %q has no command: the runner executes explicit commands only (it has no image to read an entrypoint from)", c.Name)
	}
	program, ok := r.executables[filepath.Base(argv[0])]
	if !ok {
		return nil, fmt.Errorf("container %q: no local program stands in for %q (known: %v)", c.Name, argv[0], keys(r.executables))
	}
	cmd := exec.Command(program, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Dir = work
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd, nil
}

// containerEnv builds a container's environment in the kubelet's order: envFrom, then env (later entries may
// reference earlier ones as $(VAR)).
func (r *runner) containerEnv(ctx context.Context, pod *corev1.Pod, c corev1.Container) ([]string, error) {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(r.dir, pod.Namespace+"_"+pod.Name+"_"+string(pod.UID), "home")}
	for _, from := range c.EnvFrom {
		data := map[string]string{}
		switch {
		case from.SecretRef != nil:
			s, err := r.client.CoreV1().Secrets(pod.Namespace).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
			if err != nil && !ptr.Deref(from.SecretRef.Optional, false) {
				return nil, fmt.Errorf("envFrom Secret %q: %w", from.SecretRef.Name, err)
			}
			if s != nil {
				for k, v := range s.Data {
					data[k] = string(v)
				}
			}
		case from.ConfigMapRef != nil:
			cm, err := r.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
			if err != nil && !ptr.Deref(from.ConfigMapRef.Optional, false) {
				return nil, fmt.Errorf("envFrom ConfigMap %q: %w", from.ConfigMapRef.Name, err)
			}
			if cm != nil {
				for k, v := range cm.Data {
					data[k] = v
				}
			}
		}
		for k, v := range data {
			env = append(env, from.Prefix+k+"="+v)
		}
	}
	lookup := func(name string) (string, bool) { return envLookup(env, name) }
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env = append(env, e.Name+"="+expandKubeVars(e.Value, lookup))
			continue
		}
		v, err := r.valueFrom(ctx, pod, e.ValueFrom)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		env = append(env, e.Name+"="+v)
	}
	return env, nil
}

func (r *runner) valueFrom(ctx context.Context, pod *corev1.Pod, from *corev1.EnvVarSource) (string, error) {
	switch {
	case from.FieldRef != nil:
		return podField(pod, from.FieldRef.FieldPath)
	case from.SecretKeyRef != nil:
		s, err := r.client.CoreV1().Secrets(pod.Namespace).Get(ctx, from.SecretKeyRef.Name, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("secretKeyRef %s: %w", from.SecretKeyRef.Name, err)
		}
		v, ok := s.Data[from.SecretKeyRef.Key]
		if !ok && !ptr.Deref(from.SecretKeyRef.Optional, false) {
			return "", fmt.Errorf("secretKeyRef %s: no key %q", from.SecretKeyRef.Name, from.SecretKeyRef.Key)
		}
		return string(v), nil
	case from.ConfigMapKeyRef != nil:
		cm, err := r.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, from.ConfigMapKeyRef.Name, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("configMapKeyRef %s: %w", from.ConfigMapKeyRef.Name, err)
		}
		return cm.Data[from.ConfigMapKeyRef.Key], nil
	}
	return "", errors.New("this valueFrom source is not supported by the runner (see the runner contract in package testcluster)")
}

// podField resolves the downward-API fields a chart uses.
func podField(pod *corev1.Pod, path string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		if pod.Status.PodIP != "" {
			return pod.Status.PodIP, nil
		}
		return "127.0.0.1", nil
	case "status.hostIP":
		return "127.0.0.1", nil
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels['": pod.Labels, "metadata.annotations['": pod.Annotations} {
		if strings.HasPrefix(path, prefix) && strings.HasSuffix(path, "']") {
			return m[strings.TrimSuffix(strings.TrimPrefix(path, prefix), "']")], nil
		}
	}
	return "", fmt.Errorf("fieldRef %q is not supported by the runner", path)
}

// expandKubeVars expands $(VAR) as the kubelet does: defined variables are replaced, $$ escapes, anything else
// stays as written.
func expandKubeVars(s string, lookup func(string) (string, bool)) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// envLookup returns the last value of name in env (later entries override earlier ones, as in a container).
func envLookup(env []string, name string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(env[i], "="); k == name {
			return v, true
		}
	}
	return "", false
}

// podKubeconfig writes a kubeconfig holding a token of the pod's ServiceAccount, bound to the pod.
func (r *runner) podKubeconfig(ctx context.Context, pod *corev1.Pod, work string) (string, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	tr, err := r.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: ptr.To[int64](3600),
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for ServiceAccount %s/%s: %w", pod.Namespace, sa, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["cluster"] = &clientcmdapi.Cluster{Server: r.config.Host, CertificateAuthorityData: r.config.CAData}
	cfg.AuthInfos["pod"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["pod"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "pod", Namespace: pod.Namespace}
	cfg.CurrentContext = "pod"
	path := filepath.Join(work, "kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}

func (r *runner) setStatus(ctx context.Context, pod *corev1.Pod, phase corev1.PodPhase, started metav1.Time, statuses []corev1.ContainerStatus) {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := r.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != pod.UID {
			return nil
		}
		cur.Status.Phase = phase
		cur.Status.StartTime = &started
		cur.Status.HostIP, cur.Status.PodIP = "127.0.0.1", "127.0.0.1"
		cur.Status.ContainerStatuses = statuses
		ready := corev1.ConditionFalse
		if phase == corev1.PodRunning {
			ready = corev1.ConditionTrue
		}
		cur.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: started},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: started},
			{Type: corev1.ContainersReady, Status: ready, LastTransitionTime: metav1.Now()},
			{Type: corev1.PodReady, Status: ready, LastTransitionTime: metav1.Now()},
		}
		_, err = r.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil && ctx.Err() == nil {
		r.logf("testcluster: runner: status of pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
}

func (r *runner) appendLog(pod *corev1.Pod, s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := pod.Namespace + "/" + pod.Name
	if r.logs[key] == nil {
		r.logs[key] = &bytes.Buffer{}
	}
	r.logs[key].WriteString(s)
}

func runningStatuses(containers []corev1.Container, started metav1.Time) []corev1.ContainerStatus {
	out := make([]corev1.ContainerStatus, 0, len(containers))
	for _, c := range containers {
		out = append(out, corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "runner://" + c.Image, Ready: true, Started: ptr.To(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}})
	}
	return out
}

func terminated(c corev1.Container, started metav1.Time, code int32, reason, message string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "runner://" + c.Image, Started: ptr.To(false),
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: code, Reason: reason, Message: message, StartedAt: started, FinishedAt: metav1.Now()}}}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
