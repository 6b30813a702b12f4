// Package action carries out the commands of rotate-key: one type per command (Rotate for run, retire and abort;
// Plan, Status, Fleet, Check, Remind, Hook, HookGuard, Guard, Upgrade, Rollback, InstallGuard), each run over a
// Config that holds every dependency — the connection to the API server, the Helm CLI, the clock, the identity of
// this process, the operator's terminal — and returning a value that package cli prints. Tests build a Config
// around a fake clientset and a recording Helm runner (package actiontest).
package action

import (
	"context"
	"io"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/engine"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
	"github.com/tracebloc/helm-rotate-key/internal/helmexec"
	"github.com/tracebloc/helm-rotate-key/internal/kube"
)

// Config is what every action runs over.
type Config struct {
	// Settings are the namespace, kube context and Helm paths of the surrounding helm command line.
	Settings *helmenv.Settings
	// Connect opens keyring Secret secret in namespace: the only way an action reaches the API server.
	Connect func(namespace, secret string) (*kube.Keyring, error)
	// FindKeyrings lists every keyring of the cluster (status --all-namespaces).
	FindKeyrings func(ctx context.Context) (kube.Fleet, error)
	// Helm runs $HELM_BIN; HelmAt runs another Helm binary (install-guard asks each Helm 3 on PATH).
	Helm   helmexec.Runner
	HelmAt func(bin string) helmexec.Runner
	// In, Out and ErrOut are the operator's streams; IsTerminal tells whether In is a terminal.
	In          io.Reader
	Out, ErrOut io.Writer
	IsTerminal  func() bool
	// Identity names this process in the lock and the rotation's state.
	Identity Identity
	// Rand is the key source (crypto/rand.Reader); NewRotationID makes a rotation's id.
	Rand          io.Reader
	NewRotationID func(now time.Time) string
	// LocalNow is this machine's clock, for how long until a time the API server's clock set (nil: time.Now).
	LocalNow func() time.Time
	// Getenv reads the environment (POD_NAME in a hook Job, HELM_PLUGIN_NAME, HOME, PATH).
	Getenv func(string) string
	// Executable is this binary's path (the Helm 3 post-renderer, the plugin's folder).
	Executable func() (string, error)
	// Sleep waits between the hook path's lock retries.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Identity names this process: Holder in the lock ("user@host pid N"), Actor in the state ("user@host via
// rotate-key v1"); HolderAlive tells whether another holder still runs (false only for a dead process here).
type Identity struct {
	Holder, Actor string
	HolderAlive   func(holder string) bool
	// Host names this machine (host name and process namespace); HelmRunning finds a process of this machine whose command line holds token (the
	// run token of a hook-path upgrade): its pid, and whether there is one. nil: assume one runs.
	Host        string
	HelmRunning func(token string) (pid int, running bool)
}

// Clusters every engine run needs from the API server (package kube provides them).
var _ engine.Cluster = (*kube.Keyring)(nil)

func (c *Config) now() time.Time {
	if c.LocalNow != nil {
		return c.LocalNow()
	}
	return time.Now()
}

func (c *Config) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
