// Command probe runs one command and reports its wall time and peak RSS; make bench (test/bench) runs every timed
// process through it. It exists because a child of a large process cannot be measured directly: Go starts
// children with vfork, and when the child's exec drops the address space it shared with its parent, the kernel
// charges that space's high-water mark to the child's ru_maxrss. The bench holds the streams and, later, the
// cluster's clients and informers (and the k8s packages' init alone makes it tens of MB), so its children would
// report at least its own RSS. This probe imports nothing but the standard library: the child it starts is
// charged at most the probe's couple of MB.
//
// Usage: probe COMMAND [ARG…] 3>FIGURES — COMMAND gets the probe's stdin, stdout, stderr and environment; when it
// ends, the probe writes "WALL-NANOSECONDS PEAK-RSS-KILOBYTES" to fd 3 and exits with COMMAND's exit code. The
// probe's own start-up is outside the measured interval. COMMAND dies with the probe (Pdeathsig), so a cancelled
// measurement leaves nothing behind.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe COMMAND [ARG…] 3>FIGURES")
		return 2
	}
	figures := os.NewFile(3, "figures")
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 127
	}
	err := cmd.Wait()
	wall := time.Since(began)
	var rssKB int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rssKB = ru.Maxrss // kilobytes on Linux
	}
	if _, werr := fmt.Fprintf(figures, "%d %d\n", wall.Nanoseconds(), rssKB); werr != nil {
		fmt.Fprintln(os.Stderr, "probe: fd 3:", werr)
		return 1
	}
	if err != nil {
		if code := cmd.ProcessState.ExitCode(); code > 0 {
			return code
		}
		return 1
	}
	return 0
}
