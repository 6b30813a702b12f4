package testcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// StopLeavingNothing stops the cluster and returns what is still running of it: a component the harness started
// whose process is alive, or a tool process (envtest's etcd and kube-apiserver run in process groups of their own)
// whose command line names this cluster's folder. Another cluster running beside this one — an e2e run next to
// make bench — is not this one's to account for. The e2e suite and make bench both require an empty answer.
func (c *Cluster) StopLeavingNothing() []string {
	pids := c.PIDs()
	c.Stop()
	time.Sleep(200 * time.Millisecond)
	var left []string
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			left = append(left, fmt.Sprint(pid))
		}
	}
	for _, p := range ToolProcesses(c.Tools.Dir) {
		open := strings.LastIndexByte(p, '(')
		if open < 0 {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", strings.TrimSuffix(p[open+1:], ")"), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), c.Dir) {
			left = append(left, p)
		}
	}
	return left
}
