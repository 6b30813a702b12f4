package testcluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is one control-plane component the cluster started itself (envtest starts etcd and kube-apiserver).
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// startProcess runs path with args, its output in logDir/<name>.log. The child gets its own process group (so Stop
// can signal everything it spawned) and SIGKILL when the test process dies, so a crashed run leaves nothing behind.
func startProcess(name, path, logDir string, args ...string) (*process, error) {
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, with a hint from the end of its log.
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", p.name, p.err, p.log, tail(p.log, 2000))
	default:
		return nil
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// reapOrphans kills processes left by an earlier run that died without stopping its cluster (envtest starts etcd
// and kube-apiserver in their own process groups, so they survive a killed test binary): any process whose
// executable lives in the tools folder and whose parent is gone (re-parented to PID 1).
func reapOrphans(toolsDir string, logf func(string, ...any)) {
	resolved, err := filepath.EvalSymlinks(toolsDir)
	if err != nil {
		return
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || !strings.HasPrefix(exe, resolved+string(filepath.Separator)) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after the last ')'.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == "1" {
			logf("testcluster: killing orphan %s (pid %d) left by an earlier run", filepath.Base(exe), pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// ToolProcesses lists the running processes whose executable lives in the tools folder ("name(pid)"), whatever
// started them. After Stop there must be none.
func ToolProcesses(toolsDir string) []string {
	resolved, err := filepath.EvalSymlinks(toolsDir)
	if err != nil {
		return nil
	}
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && strings.HasPrefix(exe, resolved+string(filepath.Separator)) {
			out = append(out, filepath.Base(exe)+"("+e.Name()+")")
		}
	}
	return out
}
