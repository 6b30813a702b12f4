package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/tracebloc/helm-rotate-key/internal/action"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
	"github.com/tracebloc/helm-rotate-key/internal/helmexec"
	"github.com/tracebloc/helm-rotate-key/internal/kube"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// NewConfig is the production action.Config: the API server and Helm of the surrounding helm command line
// (settings, read when an action runs, after the flags are parsed), this process's identity, the real clock and
// crypto/rand.
func NewConfig(settings *helmenv.Settings, streams Streams, getenv func(string) string) *action.Config {
	holder := holderIdentity()
	return &action.Config{
		Settings: settings,
		Connect: func(namespace, secret string) (*kube.Keyring, error) {
			cfg, err := settings.RESTConfig()
			if err != nil {
				return nil, err
			}
			cluster, err := kube.Connect(cfg, namespace)
			if err != nil {
				return nil, err
			}
			return &kube.Keyring{Cluster: cluster, SecretName: secret}, nil
		},
		FindKeyrings: func(ctx context.Context) (kube.Fleet, error) {
			cfg, err := settings.RESTConfig()
			if err != nil {
				return kube.Fleet{}, err
			}
			return kube.FindKeyrings(ctx, cfg, rotation.Prefix)
		},
		Helm:          helmexec.ForSettings(func() string { return settings.HelmBin }, settings, os.Environ),
		HelmAt:        func(bin string) helmexec.Runner { return helmexec.Exec{Bin: bin, Env: os.Environ()} },
		In:            streams.In,
		Out:           streams.Out,
		ErrOut:        streams.ErrOut,
		IsTerminal:    func() bool { return term.IsTerminal(int(os.Stdin.Fd())) },
		Identity:      action.Identity{Holder: holder, Actor: action.ActorOf(holder), HolderAlive: holderAlive, Host: machine(), HelmRunning: processWith},
		Rand:          rand.Reader,
		NewRotationID: newRotationID,
		Getenv:        getenv,
		Executable:    os.Executable,
	}
}

func holderIdentity() string {
	host, _ := os.Hostname()
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return fmt.Sprintf("%s@%s pid %d", name, host, os.Getpid())
}

// holderAlive is false only for a holder that ran on this host with a process ID that no longer exists.
func holderAlive(holder string) bool {
	at := strings.LastIndex(holder, "@")
	rest := holder[at+1:]
	host, pidText, ok := strings.Cut(rest, " pid ")
	me, _ := os.Hostname()
	if at < 0 || !ok || host != me {
		return true
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		return true
	}
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return false
	}
	// On Linux, a killed process whose parent died too may linger as a zombie, and a PID may be reused: only a
	// running rotate-key counts as the holder.
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			return false
		}
		if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && !strings.Contains(string(cmdline), "rotate-key") {
			return false
		}
	}
	return true
}

func newRotationID(now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// machine names this machine in a hook-path run token: its host name and its process namespace, so that a
// container sharing the host's name (whose processes it cannot see) does not read another one's helm as dead.
// The runbook's Where am I? builds the same ("$(uname -n)~<digits of /proc/self/ns/pid>").
func machine() string {
	host, _ := os.Hostname()
	ns, _ := os.Readlink("/proc/self/ns/pid")
	return host + "~" + strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, ns)
}

// processWith finds a process of this machine, other than this one, whose command line holds token (the helm a
// hook-path upgrade ran, by the run token in its --description). Where the process table cannot be read (no /proc)
// it answers that one runs: the caller then waits for the token's deadline instead.
func processWith(token string) (int, bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, true
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.Contains(string(cmdline), token) {
			continue
		}
		// A zombie (killed, its parent gone too) runs nothing.
		if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
				continue
			}
		}
		return pid, true
	}
	return 0, false
}
