package testcluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// VolumeRefresh is how long after a Secret changes the runner updates the files of the Secret volumes that mount
// it, drawn per pod and per change between Min and Max. A kubelet does this on its pod's next periodic sync:
// syncFrequency (default 1m) with the pod worker's resync jittered by a factor of 0.5, so 0–90 s with the default
// Watch change-detection strategy — the default here too.
type VolumeRefresh struct{ Min, Max time.Duration }

func (v VolumeRefresh) draw() time.Duration {
	if v.Max <= v.Min {
		return v.Min
	}
	return v.Min + rand.N(v.Max-v.Min)
}

// servicePod is a long-running pod (restartPolicy Always) the runner serves: its containers run concurrently and
// are restarted when they exit, until the pod is deleted.
type servicePod struct {
	pod *corev1.Pod
	// ip is the pod's IP as the API server shows it; bind the loopback address its processes listen on.
	ip, bind string
	work     string
	root     string

	statusMu    sync.Mutex
	volumeMu    sync.Mutex // one volume write at a time (the mount at start, the refreshes)
	mu          sync.Mutex
	procs       map[string]*exec.Cmd
	restarts    map[string]int32
	ready       map[string]bool
	terminating bool
	// refreshDue is set while a volume refresh is scheduled (one pending refresh per pod, as one periodic sync).
	refreshDue bool
	done       chan struct{}
}

// serve runs a long-running pod until it is deleted.
func (r *runner) serve(ctx context.Context, pod *corev1.Pod) {
	ip, bind := r.allocateIP()
	s := &servicePod{pod: pod, ip: ip, bind: bind, procs: map[string]*exec.Cmd{}, restarts: map[string]int32{}, ready: map[string]bool{}, done: make(chan struct{})}
	s.work = filepath.Join(r.dir, pod.Namespace+"_"+pod.Name+"_"+string(pod.UID))
	s.root = filepath.Join(s.work, "root")
	pod.Status.PodIP = s.ip
	r.mu.Lock()
	r.services[pod.UID] = s
	r.mu.Unlock()
	defer close(s.done)
	if err := os.MkdirAll(filepath.Join(s.work, "home"), 0o700); err != nil {
		r.logf("testcluster: runner: %v", err)
		return
	}
	// As a kubelet: the containers start once every volume can be set up (a missing Secret keeps the pod in
	// ContainerCreating until it appears).
	for {
		err := r.mountVolumes(ctx, s)
		if err == nil {
			break
		}
		r.setServiceStatus(ctx, s, fmt.Sprintf("runner: %v", err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		if s.isTerminating() {
			return
		}
	}
	var kubeconfig string
	if ptr.Deref(pod.Spec.AutomountServiceAccountToken, true) {
		var err error
		if kubeconfig, err = r.podKubeconfig(ctx, pod, s.work); err != nil {
			r.setServiceStatus(ctx, s, fmt.Sprintf("runner: %v", err))
			return
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if st := r.runContainer(ctx, pod, c, s.work, kubeconfig, s.extraEnv()); st.State.Terminated.ExitCode != 0 {
			r.setServiceStatus(ctx, s, fmt.Sprintf("runner: init container %s exited %d", c.Name, st.State.Terminated.ExitCode))
			return
		}
	}
	var wg sync.WaitGroup
	for _, c := range pod.Spec.Containers {
		wg.Add(1)
		go func() { defer wg.Done(); r.keepRunning(ctx, s, c, kubeconfig) }()
		if c.ReadinessProbe != nil {
			go r.probe(ctx, s, c)
		} else {
			s.setReady(c.Name, true)
		}
	}
	r.setServiceStatus(ctx, s, "")
	wg.Wait()
}

func (s *servicePod) extraEnv() []string {
	return []string{"RUNNER_BIND_IP=" + s.bind, "RUNNER_ROOT=" + s.root}
}

func (s *servicePod) isTerminating() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.terminating
}

// setReady records a container's readiness and reports whether it changed.
func (s *servicePod) setReady(container string, ready bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := s.ready[container] != ready
	s.ready[container] = ready
	return changed
}

// keepRunning runs a container and, as restartPolicy Always asks, starts it again when it exits, until the pod
// is terminating.
func (r *runner) keepRunning(ctx context.Context, s *servicePod, c corev1.Container, kubeconfig string) {
	for ctx.Err() == nil && !s.isTerminating() {
		env, err := r.containerEnv(ctx, s.pod, c)
		if err != nil {
			r.appendLog(s.pod, fmt.Sprintf("runner: container %q: %v\n", c.Name, err))
			time.Sleep(time.Second)
			continue
		}
		cmd, err := r.command(s.pod, c, append(append(env, s.extraEnv()...), kubeconfigEnv(kubeconfig)...), s.work)
		if err != nil {
			r.appendLog(s.pod, fmt.Sprintf("runner: container %q: %v\n", c.Name, err))
			return
		}
		cmd.Stdout, cmd.Stderr = r.podLog(s.pod), r.podLog(s.pod)
		s.mu.Lock()
		if s.terminating {
			s.mu.Unlock()
			return
		}
		err = cmd.Start()
		if err == nil {
			s.procs[c.Name] = cmd
		}
		s.mu.Unlock()
		if err != nil {
			r.appendLog(s.pod, fmt.Sprintf("runner: container %q: %v\n", c.Name, err))
			return
		}
		err = cmd.Wait()
		s.mu.Lock()
		delete(s.procs, c.Name)
		stopping := s.terminating
		if !stopping {
			s.restarts[c.Name]++
		}
		s.mu.Unlock()
		if stopping {
			return
		}
		r.appendLog(s.pod, fmt.Sprintf("runner: container %q exited (%v); restarting it in 1s\n", c.Name, err))
		s.setReady(c.Name, false)
		r.setServiceStatus(ctx, s, "")
		time.Sleep(time.Second)
	}
}

// probe runs a container's HTTP or TCP readiness probe on its period and reports changes in the pod's status.
func (r *runner) probe(ctx context.Context, s *servicePod, c corev1.Container) {
	p := c.ReadinessProbe
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	time.Sleep(time.Duration(p.InitialDelaySeconds) * time.Second)
	client := &http.Client{Timeout: timeout}
	successes, failures := int32(0), int32(0)
	for ctx.Err() == nil && !s.isTerminating() {
		ok := false
		switch {
		case p.HTTPGet != nil:
			port := probePort(c, p.HTTPGet.Port.String())
			if resp, err := client.Get("http://" + net.JoinHostPort(s.bind, port) + p.HTTPGet.Path); err == nil {
				ok = resp.StatusCode >= 200 && resp.StatusCode < 400
				resp.Body.Close()
			}
		case p.TCPSocket != nil:
			if conn, err := net.DialTimeout("tcp", net.JoinHostPort(s.bind, probePort(c, p.TCPSocket.Port.String())), timeout); err == nil {
				ok = true
				conn.Close()
			}
		default:
			ok = true // exec and gRPC probes are not run: the container counts as ready
		}
		if ok {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
		}
		switch {
		case ok && successes >= max(p.SuccessThreshold, 1):
			if s.setReady(c.Name, true) {
				r.setServiceStatus(ctx, s, "")
			}
		case !ok && failures >= max(p.FailureThreshold, 1):
			if s.setReady(c.Name, false) {
				r.setServiceStatus(ctx, s, "")
			}
		}
		time.Sleep(period)
	}
}

// probePort resolves a probe's port, by number or by the container port's name.
func probePort(c corev1.Container, port string) string {
	for _, p := range c.Ports {
		if p.Name == port {
			return strconv.Itoa(int(p.ContainerPort))
		}
	}
	return port
}

// terminate plays a kubelet's graceful deletion: SIGTERM to every container, SIGKILL once the grace period is
// over, then the deletion confirmed (grace 0).
func (r *runner) terminate(ctx context.Context, s *servicePod, pod *corev1.Pod) {
	s.mu.Lock()
	if s.terminating {
		s.mu.Unlock()
		return
	}
	s.terminating = true
	for _, cmd := range s.procs {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	s.mu.Unlock()
	grace := time.Duration(ptr.Deref(pod.DeletionGracePeriodSeconds, ptr.Deref(pod.Spec.TerminationGracePeriodSeconds, 30))) * time.Second
	go func() {
		select {
		case <-s.done:
		case <-time.After(grace):
			s.mu.Lock()
			for _, cmd := range s.procs {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
			s.mu.Unlock()
			<-s.done
		case <-ctx.Done():
			return
		}
		r.mu.Lock()
		delete(r.services, pod.UID)
		r.mu.Unlock()
		_ = r.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &pod.UID}})
	}()
}

// setServiceStatus writes a serving pod's status: Running with its IP, each container running and its readiness;
// waiting (ContainerCreating) with the message while its volumes cannot be set up.
func (r *runner) setServiceStatus(ctx context.Context, s *servicePod, waiting string) {
	// One status write at a time, each computed under the lock: a write computed before a readiness change must
	// not land after the write that reports it.
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	s.mu.Lock()
	statuses := make([]corev1.ContainerStatus, 0, len(s.pod.Spec.Containers))
	allReady := waiting == ""
	for _, c := range s.pod.Spec.Containers {
		st := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "runner://" + c.Image, Ready: s.ready[c.Name], RestartCount: s.restarts[c.Name], Started: ptr.To(waiting == "")}
		if waiting != "" {
			st.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating", Message: waiting}
		} else {
			st.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.Now()}
		}
		allReady = allReady && st.Ready
		statuses = append(statuses, st)
	}
	s.mu.Unlock()
	phase := corev1.PodRunning
	if waiting != "" {
		phase = corev1.PodPending
	}
	ready := corev1.ConditionFalse
	if allReady {
		ready = corev1.ConditionTrue
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := r.client.CoreV1().Pods(s.pod.Namespace).Get(ctx, s.pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != s.pod.UID {
			return nil
		}
		now := metav1.Now()
		if cur.Status.StartTime == nil {
			cur.Status.StartTime = &now
		}
		// A running container keeps its start time across status writes.
		for i := range statuses {
			for _, old := range cur.Status.ContainerStatuses {
				if old.Name == statuses[i].Name && old.State.Running != nil && statuses[i].State.Running != nil && old.RestartCount == statuses[i].RestartCount {
					statuses[i].State.Running.StartedAt = old.State.Running.StartedAt
				}
			}
		}
		cur.Status.Phase = phase
		cur.Status.HostIP, cur.Status.PodIP = "127.0.0.1", s.ip
		cur.Status.HostIPs, cur.Status.PodIPs = []corev1.HostIP{{IP: "127.0.0.1"}}, []corev1.PodIP{{IP: s.ip}}
		cur.Status.ContainerStatuses = statuses
		conditions := []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: *cur.Status.StartTime},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: *cur.Status.StartTime},
			{Type: corev1.ContainersReady, Status: ready, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: ready, LastTransitionTime: now},
		}
		// As a kubelet: a condition's transition time moves only when its status does (a Deployment's
		// minReadySeconds counts from the Ready transition).
		for i := range conditions {
			for _, old := range cur.Status.Conditions {
				if old.Type == conditions[i].Type && old.Status == conditions[i].Status && !old.LastTransitionTime.IsZero() {
					conditions[i].LastTransitionTime = old.LastTransitionTime
				}
			}
		}
		cur.Status.Conditions = conditions
		_, err = r.client.CoreV1().Pods(s.pod.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil && ctx.Err() == nil {
		r.logf("testcluster: runner: status of pod %s/%s: %v", s.pod.Namespace, s.pod.Name, err)
	}
}

// allocateIP gives each serving pod its IP in 10.42.0.0/16 and the loopback address its processes bind to (see
// podNetwork): the runner has no network namespaces, and the API server refuses loopback addresses in
// EndpointSlices.
func (r *runner) allocateIP() (ip, bind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextIP++
	ip = fmt.Sprintf("10.42.%d.%d", r.nextIP/250, r.nextIP%250+1)
	return ip, r.net.local(ip)
}

func kubeconfigEnv(path string) []string {
	if path == "" {
		return nil
	}
	return []string{"KUBECONFIG=" + path}
}

// podLog is a writer onto the pod's log as the runner keeps it (Cluster.PodLogs), for a long-running process.
func (r *runner) podLog(pod *corev1.Pod) podLogWriter { return podLogWriter{r: r, pod: pod} }

type podLogWriter struct {
	r   *runner
	pod *corev1.Pod
}

func (w podLogWriter) Write(p []byte) (int, error) {
	w.r.appendLog(w.pod, string(p))
	return len(p), nil
}
