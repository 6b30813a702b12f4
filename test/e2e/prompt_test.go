package e2e

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// runOnTerminal runs rotate-key under a pseudo-terminal, answers its prompt, and returns the output and exit code.
func runOnTerminal(t *testing.T, answer string, args ...string) (string, int) {
	t.Helper()
	return runPTY(t, exec.Command(cluster.Binary, args...), "Proceed? [y/N]", answer)
}

// runPTY runs cmd on a pseudo-terminal (its controlling terminal, /dev/tty), answers once when prompt appears
// (prompt "" answers nothing), and returns everything written to the terminal and the exit code.
func runPTY(t *testing.T, cmd *exec.Cmd, prompt, answer string) (string, int) {
	t.Helper()
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var mu sync.Mutex
	var out strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewReader(tty)
		buf := make([]byte, 1024)
		answered := prompt == ""
		for {
			n, err := r.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			seen := out.String()
			mu.Unlock()
			if !answered && strings.Contains(seen, prompt) {
				_, _ = io.WriteString(tty, answer+"\n")
				answered = true
			}
			if err != nil {
				return
			}
		}
	}()
	err = cmd.Wait()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	mu.Lock()
	defer mu.Unlock()
	return out.String(), exitCode(err)
}

// TestRunAsksOnATerminal: on a terminal, run shows the plan and asks; "n" changes nothing, "y" proceeds. Without a
// terminal and without --yes, it refuses.
func TestRunAsksOnATerminal(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "prompt", nil)
	fixture(t, ns)
	base := []string{"--kubeconfig", cluster.Kubeconfig, "-n", ns, "run", "app"}
	rv := func() string {
		s, err := cluster.Client.CoreV1().Secrets(ns).Get(ctx, "app-requests-proxy-admin", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s.ResourceVersion
	}
	before := rv()
	out, code := runOnTerminal(t, "n", base...)
	if code != 2 || !strings.Contains(out, "Next: add-key") || !strings.Contains(out, "TTL 1m0s (Secret annotation") || !strings.Contains(out, "not confirmed; nothing was changed") || rv() != before {
		t.Fatalf("answer n: exit %d\n%s", code, out)
	}
	noTTY, err := exec.Command(cluster.Binary, base...).CombinedOutput()
	if exitCode(err) != 2 || !strings.Contains(string(noTTY), "rerun with --yes") || rv() != before {
		t.Fatalf("no terminal, no --yes: exit %d\n%s", exitCode(err), noTTY)
	}
	out, code = runOnTerminal(t, "y", base...)
	if code != 3 || !strings.Contains(out, "Finish after") {
		t.Fatalf("answer y: exit %d\n%s", code, out)
	}
}
