package action

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tracebloc/helm-rotate-key/charts"
	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/kube"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// A helm upgrade on the hook path that dies with the operator's machine (kill -9, a closed laptop) leaves the
// release pending-upgrade, and Helm refuses every later upgrade of it. Helm records no owner of a pending revision
// (its description reads "Preparing upgrade" until the end), so the hook path sets one in the values, which Helm
// stores in the pending revision at once: a run token naming a nonce, the revision it expects, the host and the
// time by which that helm would have given up. A rerun that finds such a revision pending tells a dead upgrade from
// a running one by the token, lets the hook Jobs that helm started finish, forgets the revision (Helm's record
// only: no object changes) and carries the rotation on. The token names its revision, so a later upgrade that
// inherits it through --reuse-values is never taken for the hook path's own.

// RunValue is the chart value that carries the hook path's run token.
const RunValue = charts.LibraryName + ".rotation.run"

// hookRun is the run token of one hook-path upgrade.
type hookRun struct {
	Nonce    string
	Revision int
	Host     string
	// Until is when the helm upgrade would have ended on its own (every hook Job waited for its full timeout).
	Until time.Time
}

func (r hookRun) String() string {
	return fmt.Sprintf("r-%s rev %d on %s until %s", r.Nonce, r.Revision, r.Host, r.Until.UTC().Format(time.RFC3339))
}

// The library chart's schema holds the same pattern (rotation.run).
var hookRunPattern = regexp.MustCompile(`^r-([0-9a-f]{8}) rev ([1-9][0-9]{0,8}) on ([^ \[\]]{1,253}) until ([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)$`)

// parseHookRun reads a run token.
func parseHookRun(token string) (hookRun, bool) {
	m := hookRunPattern.FindStringSubmatch(token)
	if m == nil {
		return hookRun{}, false
	}
	rev, err1 := strconv.Atoi(m[2])
	until, err2 := time.Parse(time.RFC3339, m[4])
	if err1 != nil || err2 != nil {
		return hookRun{}, false
	}
	return hookRun{Nonce: m[1], Revision: rev, Host: m[3], Until: until}, true
}

// newHookRun is the token of an upgrade to revision, starting at now (the API server's clock), whose helm waits at
// most helmTimeout for each hook Job.
func newHookRun(random io.Reader, revision int, host string, now time.Time, helmTimeout time.Duration) hookRun {
	b := make([]byte, 4)
	_, _ = io.ReadFull(random, b)
	if host == "" || len(host) > 253 || strings.ContainsAny(host, " []") {
		host = "unknown-host"
	}
	// The chart's rotation Jobs plus its guard Jobs before and after them: each may take helm's whole timeout.
	hooks := len(rotation.ChartHooks()) + 2
	return hookRun{Nonce: hex.EncodeToString(b), Revision: revision, Host: host, Until: now.Add(time.Duration(hooks) * helmTimeout).Truncate(time.Second).Add(time.Second)}
}

// runToken is the run token the release's newest record carries in its values ("" for none).
func runToken(obs *observation) string {
	if obs.record == nil {
		return ""
	}
	lib, _ := obs.record.Config[charts.LibraryName].(map[string]any)
	rot, _ := lib["rotation"].(map[string]any)
	token, _ := rot["run"].(string)
	return token
}

// pendingHookUpgrade clears the way for the hook path when the release's last revision is a pending upgrade or
// install left by the hook path's own helm: refused while that helm may still run, otherwise it waits for the hook
// Jobs it started, forgets the revision and returns the keyring observed afresh. Any other pending revision
// (someone else's helm, a rollback) is refused with what to do.
func (a *Rotate) pendingHookUpgrade(ctx context.Context, c *Config, obs *observation) (*observation, error) {
	rel := obs.release
	if rel == nil || !strings.HasPrefix(rel.Status, "pending-") {
		return obs, nil
	}
	if rel.Status == "pending-rollback" {
		return a.refusedRollback(ctx, c, obs)
	}
	run, ours := parseHookRun(runToken(obs))
	if !ours || run.Revision != rel.Revision {
		return nil, fmt.Errorf("release %s is stuck in %s at revision %d (%s), which is not a helm upgrade of the hook path: Helm refuses every upgrade until it is cleared. If a helm is still running it, wait for it; if it died, see the runbook, \"A laptop died during the rotation\" (docs/RUNBOOKS/requests-proxy-key-rotation.md). Meanwhile the rotation carries on without an upgrade with: %s --local",
			a.Release, rel.Status, rel.Revision, rel.Description, a.ResumeCommand())
	}
	if c.Identity.HelmRunning == nil {
		return nil, exitcode.Withf(exitcode.LockHeld, "release %s revision %d (%s) is the hook-path upgrade with run token %q, and this process cannot tell whether its helm still runs: rerun after %s, or carry on now with %s --local",
			a.Release, rel.Revision, rel.Status, run, run.Until.UTC().Format(time.RFC3339), a.ResumeCommand())
	}
	if pid, running := c.Identity.HelmRunning("r-" + run.Nonce); running {
		return nil, exitcode.Withf(exitcode.LockHeld, "release %s revision %d (%s) is a hook-path upgrade of this rotation that is still running on this machine (pid %d): wait until it ends, then rerun: %s",
			a.Release, rel.Revision, rel.Status, pid, a.ResumeCommand())
	}
	if run.Host != c.Identity.Host && obs.now.Before(run.Until) {
		way := "or carry on now without an upgrade: " + a.ResumeCommand() + " --local"
		if !obs.state.InProgress() { // nothing to carry on; a --local run could start a rotation
			way = "the keyring needs nothing meanwhile; once that helm is surely gone, the runbook's block \"A laptop died during the rotation (Part A)\" clears the revision"
		}
		return nil, exitcode.Withf(exitcode.LockHeld, "release %s revision %d (%s) is a hook-path upgrade started on machine %s (host name~process namespace; this process runs on %s: another machine, or another process namespace of it), whose helm may still run there until %s: rerun this where it started (it tells a dead helm from a live one), or here after %s; %s",
			a.Release, rel.Revision, rel.Status, run.Host, c.Identity.Host, run.Until.UTC().Format(time.RFC3339), run.Until.UTC().Format(time.RFC3339), way)
	}
	fmt.Fprintf(c.ErrOut, "Release %s revision %d is %s, left by the hook-path upgrade with run token %q, whose helm no longer runs. Waiting for the hook Jobs it started to end ...\n", a.Release, rel.Revision, rel.Status, run)
	if err := a.waitHookJobs(ctx, c, obs, rel.Revision); err != nil {
		return nil, err
	}
	deleted, err := obs.target.DeletePendingRecord(ctx, c.Settings.Driver, a.Release, rel.Revision)
	if err != nil {
		return nil, err
	}
	if deleted {
		fmt.Fprintf(c.ErrOut, "Deleted Helm's record of the interrupted revision %d: Helm forgets it, no object changed. Carrying the rotation on.\n", rel.Revision)
	}
	return c.observe(ctx, a.Target, a.Overrides)
}

// waitHookJobs waits, up to the run's timeout, until no rotation hook Job runs: those of an interrupted or
// rolled-back revision carry on after their helm has gone, and the next step must not race them.
func (a *Rotate) waitHookJobs(ctx context.Context, c *Config, obs *observation, revision int) error {
	deadline := c.now().Add(a.Timeout)
	for {
		active, err := obs.target.ActiveJobs(ctx, JobSelector)
		if err != nil {
			return err
		}
		if len(active) == 0 {
			return nil
		}
		if c.now().After(deadline) {
			return fmt.Errorf("the hook Jobs %s of the interrupted revision %d still run after %s: rerun when they have ended (kubectl -n %s get jobs -l %s): %s",
				strings.Join(active, ", "), revision, a.Timeout, a.Namespace, JobSelector, a.ResumeCommand())
		}
		if err := c.sleep(ctx, 2*time.Second); err != nil {
			return err
		}
	}
}

// refusedRollback clears a pending-rollback the chart's guard hook refused — a `helm rollback`, or the rollback
// `helm upgrade --atomic` (Helm 4: --rollback-on-failure) runs when a rotation hook Job outlives its timeout: Helm
// runs pre-rollback hooks before it applies anything and stops at the first that fails, so only the revision's
// record is left, and it blocks every later operation. The rotation Jobs of the failed upgrade carry on; the run
// waits for them, forgets the record and carries on. Any other pending-rollback is someone's running or dead
// helm: refused with what clears it.
func (a *Rotate) refusedRollback(ctx context.Context, c *Config, obs *observation) (*observation, error) {
	// An upgrader that rolls back whenever the release is pending stacks refused rollbacks: each is one more
	// revision pending-rollback on top of the last, and the guard Job refused the newest after all of them.
	waited := false
	for rel := obs.release; rel != nil && rel.Status == "pending-rollback"; rel = obs.release {
		refused, err := obs.target.RefusedRollback(ctx, c.Settings.Driver, a.Release, rel.Revision)
		if err != nil {
			return nil, err
		}
		if !refused {
			return nil, fmt.Errorf("release %s is stuck in pending-rollback at revision %d (%s): Helm refuses every upgrade until it is cleared. If a helm rollback is still running, wait for it; if it died, helm -n %s rotate-key rollback %s REVISION clears it and rolls back with the keyring kept (REVISION: the deployed one to keep the application as it is). Meanwhile the rotation carries on without an upgrade with: %s --local",
				a.Release, rel.Revision, rel.Description, a.Namespace, a.Release, a.ResumeCommand())
		}
		if !waited {
			fmt.Fprintf(c.ErrOut, "Release %s revision %d is pending-rollback: the chart's guard hook refused that rollback (Job %s failed), so Helm applied nothing. Waiting for the rotation hook Jobs to end ...\n", a.Release, rel.Revision, kube.GuardRollbackJob(a.Release))
			if err := a.waitHookJobs(ctx, c, obs, rel.Revision); err != nil {
				return nil, err
			}
			waited = true
		}
		if err := obs.target.DeleteReleaseRecord(ctx, c.Settings.Driver, a.Release, rel.Revision); err != nil {
			return nil, err
		}
		fmt.Fprintf(c.ErrOut, "Deleted Helm's record of the refused rollback %d: Helm forgets it, no object changed.\n", rel.Revision)
		if obs, err = c.observe(ctx, a.Target, a.Overrides); err != nil {
			return nil, err
		}
	}
	fmt.Fprintln(c.ErrOut, "Carrying the rotation on.")
	return obs, nil
}
