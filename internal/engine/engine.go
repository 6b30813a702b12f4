// Package engine runs a rotation against the cluster: observe the keyring Secret, decide the next step
// (rotation.Next), look its transition up in rotation.Table, act, persist, repeat. It holds the loop, the lock and
// one function per rotation.Write; every fact about the phases lives in package rotation.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// Cluster is everything the engine needs from the API server. Package kube implements it; tests wrap it to inject
// faults at one call.
type Cluster interface {
	// Secret reads the keyring Secret.
	Secret(ctx context.Context) (*corev1.Secret, error)
	// UpdateSecret writes it, guarded by its resourceVersion (a conflict is apierrors.IsConflict).
	UpdateSecret(ctx context.Context, s *corev1.Secret) (*corev1.Secret, error)
	// Consumers returns the named workloads, or when refs is empty the ones whose pod templates reference the Secret.
	Consumers(ctx context.Context, refs []rotation.ConsumerRef) ([]rotation.Consumer, error)
	// Restart sets the restart annotation of a consumer's pod template to value (a no-op when already set).
	Restart(ctx context.Context, c rotation.ConsumerRef, value string) error
	// Rollout reports whether every pod of the consumer carries the restart value and the workload is available.
	Rollout(ctx context.Context, c rotation.ConsumerRef, value string) (rotation.RolloutStatus, error)
	// Event records an Event on the Secret (reason and message never hold key material).
	Event(ctx context.Context, s *corev1.Secret, eventType, reason, message string)
	// Strays returns the pods that read the keyring, created at or before since, that no rollout of the consumers
	// restarts (Jobs', CronJobs', bare pods).
	Strays(ctx context.Context, consumers []rotation.ConsumerRef, since time.Time) ([]string, error)
	// Now is the API server's clock.
	Now(ctx context.Context) (time.Time, error)
	// Preflight checks, before the first write, that every permission the rotation needs is granted: on the
	// consumers named, or, when none are, the right to discover them.
	Preflight(ctx context.Context, consumers []rotation.ConsumerRef) error
}

// Engine runs a rotation until it waits for the TTL or has nothing left to do. One Engine value is one run.
type Engine struct {
	Cluster Cluster
	Config  rotation.Config
	// Holder identifies this run in the lease; Actor is written into the state ("user@host via rotate-key v1").
	Holder, Actor string
	// TakeOver takes a live lease held by another run.
	TakeOver bool
	// Force starts a rotation before it is due.
	Force bool
	// Emergency, when set, is the reason for an emergency rotation of a leaked key: in any phase, unless an
	// emergency rotation is already in progress, the run adds a fresh version and, once it is active everywhere,
	// retires every other version at once (their live tokens are rejected: the cost of a leak).
	Emergency string
	// HolderAlive tells whether another lease holder still runs (nil: assume it does).
	HolderAlive func(holder string) bool
	// Rand is the key source (crypto/rand.Reader).
	Rand io.Reader
	// Out receives one progress line per step and per consumer change.
	Out io.Writer
	// RolloutTimeout bounds each rollout; when it passes, the run stops with a resumable state.
	RolloutTimeout time.Duration
	// Poll is the longest interval between rollout checks. Checks start FirstPoll apart and stay at most
	// QuickPoll apart for the rollout's first QuickFor, then back off to Poll: a rollout that finishes in a second or
	// two is seen within a fraction of a second, while a long one costs few requests.
	Poll time.Duration
	// NewRotationID makes the id of a new rotation.
	NewRotationID func(now time.Time) string
	// Request, when set, is a rotation requested declaratively (the chart value rotation.request): it becomes the
	// new rotation's id, and a rotation is started only while the last rotation's id differs from it, so the same
	// request left in the values starts exactly one rotation however many upgrades carry it.
	Request string
	// Hook, when set, is the chart's hook Job this run is: it performs only the transitions rotation.Table gives
	// that Job and returns at the first other one, leaving it to the Jobs after it.
	Hook string
	// LocalNow and Sleep measure and spend the run's own time (rollout deadlines, polling, lease renewal); nil
	// means the real clock. Only in-process simulations replace them — no flag or variable shifts the clock.
	LocalNow func() time.Time
	Sleep    func(ctx context.Context, d time.Duration) error
	// Seen, when set, is the keyring Secret as the caller just read it: the run's first observation uses it instead
	// of reading it again. Every write is resourceVersion-guarded, so a copy that went stale fails the write with a
	// Conflict, and the run reads afresh.
	Seen *corev1.Secret
	// Reconfigure, when set, resolves the configuration again from the keyring Secret as just read (and from what
	// else the caller reads it: the release's values). A run reads its TTL at its start, then waits for rollouts
	// for minutes; a TTL raised meanwhile (pods restarted with it sign with it) must count for the retirement it
	// schedules. nil: the configuration stays as it was at the start.
	Reconfigure func(ctx context.Context, secret *corev1.Secret) (rotation.Config, error)

	lease    *rotation.Lease
	preflown bool
	found    []rotation.Consumer
}

// Result is where a run left the rotation.
type Result struct {
	State    rotation.State
	Keyring  *keyring.Keyring
	Decision rotation.Decision
}

// The rollout checks' pace (see Engine.Poll).
const (
	FirstPoll = 100 * time.Millisecond
	QuickPoll = 250 * time.Millisecond
	QuickFor  = 10 * time.Second
)

// MaxConflictRetries bounds how often a run observes again after another writer changed the Secret under it.
const MaxConflictRetries = 20

// ErrRolloutTimeout ends a run whose rollout did not finish in time; the state is resumable.
var ErrRolloutTimeout = errors.New("rollout did not finish in time")

// Run drives the rotation as far as it can go now. startRequested starts a new rotation when none is in progress.
// Interrupted (Ctrl-C, a Job's SIGTERM), it releases the rotation lock it holds on the way out, so that the next
// run resumes at once instead of waiting for the lock to lapse; its error then wraps context.Canceled.
func (e *Engine) Run(ctx context.Context, startRequested bool) (Result, error) {
	res, err := e.run(ctx, startRequested)
	return res, e.releaseInterrupted(ctx, err)
}

func (e *Engine) run(ctx context.Context, startRequested bool) (Result, error) {
	acted := false // once this run has moved the rotation, reaching Idle again means it finished
	for attempt := 0; ; attempt++ {
		secret, k, st, now, err := e.observe(ctx)
		if err != nil {
			return Result{}, err
		}
		reconstructed := false
		if e.Emergency == "" { // an emergency retires every other version anyway
			st, reconstructed = rotation.Reconstruct(st, k.Versions(), k.Active, now)
		}
		start := startRequested && !acted && (e.Request == "" || !rotation.RequestStarted(secret.Annotations, st, e.Request))
		d := rotation.Next(st, now, start, e.Force)
		if reconstructed {
			d.Reason = rotation.ReconstructedNote(st) + ": " + d.Reason
		}
		if acted && st.Phase == rotation.Idle {
			d = rotation.Decision{Step: rotation.StepNothing, Reason: "rotation finished", Until: st.NextRotationDue}
		}
		// Also after acting: a second leak reported during an emergency finishes the first, then starts its own.
		if e.Emergency != "" && rotation.EmergencyPending(st, e.Emergency) {
			emergency, _ := rotation.Lookup(st.Phase, rotation.StepEmergency)
			d = rotation.Decision{Step: emergency.Step, Reason: emergency.Reason(rotation.State{Emergency: e.Emergency})}
		} else if startRequested && !acted && !start && st.Phase == rotation.Idle {
			d = rotation.Decision{Step: rotation.StepNothing, Reason: fmt.Sprintf("rotation request %s has already started a rotation (a request starts one, ever; set a new rotate-key.rotation.request to rotate again)", e.Request), Until: st.NextRotationDue}
		}
		res := Result{State: st, Keyring: k, Decision: d}
		if d.Step == rotation.StepNothing || d.Step == rotation.StepWaitTTL {
			return res, e.rest(ctx, secret, st, reconstructed)
		}
		t, ok := rotation.Lookup(st.Phase, d.Step)
		if !ok {
			return res, fmt.Errorf("internal error: rotation.Table has no step %s in phase %s", d.Step, st.Phase)
		}
		if back := st.Resurrected(k.Versions(), k.Active); len(back) > 0 && t.Step != rotation.StepEmergency && !(st.InProgress() && st.Emergency != "") {
			// A rotation would roll the retired key out again and retire only its own outgoing version; an
			// emergency removes every older version anyway.
			var kids []string
			for _, v := range back {
				kids = append(kids, keyring.Kid(v))
			}
			return res, errors.Join(&keyring.Violation{Secret: k.Secret, Rule: keyring.RuleRetiredStays,
				Detail: fmt.Sprintf("%s %s back, retired already (%s v%d)", strings.Join(kids, ", "), map[bool]string{true: "is", false: "are"}[len(kids) == 1], rotation.AnnoRetiredUpTo, st.RetiredUpTo),
				Fix:    "remove it as helm rotate-key status prints it (RETIRED KEY BACK), then run this again"}, e.release(ctx, secret))
		}
		if e.Hook != "" && !rotation.HookMayPerform(e.Hook, t) {
			return res, e.release(ctx, secret)
		}
		if !e.preflown {
			if err := e.Cluster.Preflight(ctx, e.Config.Consumers); err != nil {
				return res, err
			}
			e.preflown = true
		}
		if err := e.noStrays(ctx, secret, st, t); err != nil {
			// The lock this run took with an earlier write goes back: the operator restarts the pods and reruns.
			var v *keyring.Violation
			if acted && errors.As(err, &v) {
				v.Earlier = true
			}
			return res, errors.Join(err, e.release(ctx, secret))
		}
		switch err := e.act(ctx, secret, k, st, now, t, d); {
		case apierrors.IsConflict(err) && attempt < MaxConflictRetries:
			continue // someone wrote the Secret in between: observe again
		case err != nil:
			var v *keyring.Violation
			if errors.As(err, &v) { // refused before its write: the lock an earlier write took goes back
				v.Earlier = acted
				return res, errors.Join(err, e.release(ctx, secret))
			}
			return res, err
		}
		acted = true
	}
}

// observe reads the Secret — or takes the copy the last write returned (or Seen): that is the Secret as the API
// server stored it, and a write based on it conflicts if anyone wrote since, so a second read would only cost a
// request (docs/benchmarks.md, "API requests").
func (e *Engine) observe(ctx context.Context) (*corev1.Secret, *keyring.Keyring, rotation.State, time.Time, error) {
	secret := e.Seen
	e.Seen = nil
	if secret == nil {
		var err error
		if secret, err = e.Cluster.Secret(ctx); err != nil {
			return nil, nil, rotation.State{}, time.Time{}, err
		}
	}
	k, err := keyring.Parse(secretName(secret), secret.Data)
	if err != nil {
		return nil, nil, rotation.State{}, time.Time{}, err
	}
	st, err := rotation.ParseState(secret.Annotations)
	if err != nil {
		return nil, nil, rotation.State{}, time.Time{}, fmt.Errorf("keyring Secret %s: %w", secretName(secret), err)
	}
	if err := rotation.Consistent(st, k); err != nil {
		return nil, nil, rotation.State{}, time.Time{}, err
	}
	now, err := e.Cluster.Now(ctx)
	return secret, k, st, now, err
}

// act performs one transition. A transition with a rollout takes the lease in a write of its own and restarts the
// consumers first; any other is one write, the lease going with it. A step that would be refused (a pinned
// version, a broken invariant) is refused before the lock is taken: a refusal writes nothing.
func (e *Engine) act(ctx context.Context, secret *corev1.Secret, k *keyring.Keyring, st rotation.State, now time.Time, t rotation.Transition, d rotation.Decision) error {
	if t.Rollout != "" {
		if err := keyring.Validate(secretName(secret), secret.Data); err != nil {
			return err
		}
		if err := e.acquire(ctx, secret, st.RotationID, now); err != nil {
			return err
		}
		e.printf("%s: %s — %s", secretName(secret), d.Step, d.Reason)
		return e.rollout(ctx, secret, st)
	}
	w, err := e.perform(ctx, t, secret, k, st, now)
	if err != nil {
		return err
	}
	if err := keyring.Validate(secretName(secret), keyring.Apply(secret.Data, w.data)); err != nil {
		return err
	}
	// Taking the lease separately would cost a request and protect nothing more: the write is
	// resourceVersion-guarded either way.
	notice, err := e.claim(secret, w.next.RotationID, now)
	if err != nil {
		return err
	}
	e.printf("%s: %s — %s", secretName(secret), d.Step, d.Reason)
	if err := e.write(ctx, secret, w, t.Event); err != nil {
		return err
	}
	e.tookOver(ctx, e.Seen, notice)
	return nil
}

// noStrays refuses a step whose Readers rule finds pods that read the keyring before its moment and that no
// rollout restarts: the operator restarts them (a Job's pod is deleted and its Job makes a new one), then reruns.
func (e *Engine) noStrays(ctx context.Context, secret *corev1.Secret, st rotation.State, t rotation.Transition) error {
	if t.Readers == nil {
		return nil
	}
	since, why := t.Readers(st)
	if since.IsZero() {
		return nil
	}
	consumers, err := e.consumers(ctx)
	if err != nil {
		return err
	}
	refs := make([]rotation.ConsumerRef, len(consumers))
	for i, c := range consumers {
		refs[i] = c.Ref
	}
	strays, err := e.Cluster.Strays(ctx, refs, since)
	if err != nil || len(strays) == 0 {
		return err
	}
	return &keyring.Violation{Secret: secretName(secret), Rule: keyring.RuleReadersKnown,
		Detail: fmt.Sprintf("the pods %s read the keyring, %s; they belong to no workload the rotation restarts (a Job's, a CronJob's or a bare pod)", strings.Join(strays, ", "), why),
		Fix:    fmt.Sprintf("restart each (kubectl -n %s delete pod NAME; a Job or CronJob makes a new one that reads the keyring as it is now), or wait until it ends, then rerun", secret.Namespace)}
}

// consumers finds the consumers once per run: the retirement's pinned-version check and every rollout of the run
// restart the same workloads (a workload created during the run is found by the next run, which restarts it
// after the retirement).
func (e *Engine) consumers(ctx context.Context) ([]rotation.Consumer, error) {
	if e.found == nil {
		found, err := e.Cluster.Consumers(ctx, e.Config.Consumers)
		if err != nil {
			return nil, err
		}
		e.found = found
	}
	return e.found, nil
}

func (e *Engine) localNow() time.Time {
	if e.LocalNow != nil {
		return e.LocalNow()
	}
	return time.Now()
}

func (e *Engine) sleep(ctx context.Context, d time.Duration) error {
	if e.Sleep != nil {
		return e.Sleep(ctx, d)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func secretName(s *corev1.Secret) string { return s.Namespace + "/" + s.Name }

func (e *Engine) printf(format string, args ...any) {
	if e.Out != nil {
		fmt.Fprintf(e.Out, format+"\n", args...)
	}
}
