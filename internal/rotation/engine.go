package rotation

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
)

// Consumer is a workload that reads the keyring, as the cluster layer found it.
type Consumer struct {
	Ref ConsumerRef
	// Pinned lists the keyring data keys the pod template names explicitly (secretKeyRef.key, volume items[].key):
	// those versions are never retired.
	Pinned []string
}

// RolloutStatus is one consumer's progress towards "no pod from before the restart is left".
type RolloutStatus struct {
	Done     bool
	Progress string
}

// Cluster is everything the engine needs from the API server. Package kube implements it; tests wrap it to inject
// faults at one call.
type Cluster interface {
	// Secret reads the keyring Secret.
	Secret(ctx context.Context) (*corev1.Secret, error)
	// UpdateSecret writes it, guarded by its resourceVersion (a conflict is apierrors.IsConflict).
	UpdateSecret(ctx context.Context, s *corev1.Secret) (*corev1.Secret, error)
	// Consumers returns the named workloads, or when refs is empty the ones whose pod templates reference the Secret.
	Consumers(ctx context.Context, refs []ConsumerRef) ([]Consumer, error)
	// Restart sets the restart annotation of a consumer's pod template to value (a no-op when already set).
	Restart(ctx context.Context, c ConsumerRef, value string) error
	// Rollout reports whether every pod of the consumer carries the restart value and the workload is available.
	Rollout(ctx context.Context, c ConsumerRef, value string) (RolloutStatus, error)
	// Event records an Event on the Secret (reason and message never hold key material).
	Event(ctx context.Context, s *corev1.Secret, eventType, reason, message string)
	// Now is the API server's clock.
	Now(ctx context.Context) (time.Time, error)
	// Preflight checks, before the first write, that every permission the rotation needs is granted: on the
	// consumers named, or, when none are, the right to discover them.
	Preflight(ctx context.Context, consumers []ConsumerRef) error
}

// Engine runs a rotation: observe the Secret, decide the next step, act, persist, repeat — until the rotation
// waits for the TTL or has nothing left to do. One Engine value is one run.
type Engine struct {
	Cluster Cluster
	Config  Config
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
	// Steps, when not empty, limits the run to these steps: it returns at the first decision outside them. Each
	// hook Job of the chart performs its own step and leaves the rest to the Jobs after it.
	Steps []Step
	// LocalNow and Sleep measure and spend the run's own time (rollout deadlines, polling, lease renewal); nil
	// means the real clock. Only in-process simulations replace them — no flag or variable shifts the clock.
	LocalNow func() time.Time
	Sleep    func(ctx context.Context, d time.Duration) error
	// Seen, when set, is the keyring Secret as the caller just read it: the run's first observation uses it instead
	// of reading it again. Every write is resourceVersion-guarded, so a copy that went stale fails the write with a
	// Conflict, and the run reads afresh.
	Seen *corev1.Secret

	lease    *Lease
	preflown bool
	found    []Consumer
}

// Result is where a run left the rotation.
type Result struct {
	State    State
	Keyring  *keyring.Keyring
	Decision Decision
}

// The rollout checks' pace (see Engine.Poll).
const (
	FirstPoll = 100 * time.Millisecond
	QuickPoll = 250 * time.Millisecond
	QuickFor  = 10 * time.Second
)

// ErrRolloutTimeout ends a run whose rollout did not finish in time; the state is resumable.
var ErrRolloutTimeout = errors.New("rollout did not finish in time")

// Run drives the rotation as far as it can go now. startRequested starts a new rotation when none is in progress.
func (e *Engine) Run(ctx context.Context, startRequested bool) (Result, error) {
	acted := false // once this run has moved the rotation, reaching Idle again means it finished
	for attempt := 0; ; attempt++ {
		secret, k, st, now, err := e.observe(ctx)
		if err != nil {
			return Result{}, err
		}
		start := startRequested && !acted && (e.Request == "" || st.RotationID != e.Request)
		d := Next(st, now, start, e.Force)
		if acted && st.Phase == Idle {
			d = Decision{Step: StepNothing, Reason: "rotation finished", Until: st.NextRotationDue}
		}
		if e.Emergency != "" && !acted && EmergencyPending(st, e.Emergency) {
			d = Decision{Step: StepEmergency, Reason: fmt.Sprintf("emergency rotation (%s): add a fresh key; once it is active everywhere every other version is retired at once", e.Emergency)}
		} else if startRequested && !acted && !start && st.Phase == Idle {
			d = Decision{Step: StepNothing, Reason: fmt.Sprintf("rotation %s was requested and has already run (finished %s)", e.Request, st.FinishedAt.UTC().Format(time.RFC3339)), Until: st.NextRotationDue}
		}
		res := Result{State: st, Keyring: k, Decision: d}
		if d.Step == StepNothing || d.Step == StepWaitTTL || !e.allowed(d.Step) {
			return res, e.release(ctx, secret)
		}
		if !e.preflown {
			if err := e.Cluster.Preflight(ctx, e.Config.Consumers); err != nil {
				return res, err
			}
			e.preflown = true
		}
		switch err := e.act(ctx, secret, k, st, now, d); {
		case apierrors.IsConflict(err) && attempt < 20:
			continue // someone wrote the Secret in between: observe again
		case err != nil:
			return res, err
		}
		acted = true
	}
}

// observe reads the Secret — or takes the copy the last write returned (or Seen): that is the Secret as the API
// server stored it, and a write based on it conflicts if anyone wrote since, so a second read would only cost a
// request (docs/benchmarks.md, "API requests").
func (e *Engine) observe(ctx context.Context) (*corev1.Secret, *keyring.Keyring, State, time.Time, error) {
	secret := e.Seen
	e.Seen = nil
	if secret == nil {
		var err error
		if secret, err = e.Cluster.Secret(ctx); err != nil {
			return nil, nil, State{}, time.Time{}, err
		}
	}
	k, err := keyring.Parse(secretName(secret), secret.Data)
	if err != nil {
		return nil, nil, State{}, time.Time{}, err
	}
	st, err := ParseState(secret.Annotations)
	if err != nil {
		return nil, nil, State{}, time.Time{}, fmt.Errorf("keyring Secret %s: %w", secretName(secret), err)
	}
	if err := Consistent(st, k); err != nil {
		return nil, nil, State{}, time.Time{}, err
	}
	now, err := e.Cluster.Now(ctx)
	return secret, k, st, now, err
}

// act performs one step; every transition is a single resourceVersion-guarded write. A step that would be
// refused (a pinned version, a broken invariant) is refused before the lock is taken: a refusal writes nothing.
func (e *Engine) act(ctx context.Context, secret *corev1.Secret, k *keyring.Keyring, st State, now time.Time, d Decision) error {
	rotationID := st.RotationID
	var (
		change keyring.Change
		next   State
		reason string
		msg    string
	)
	switch d.Step {
	case StepStart:
		if err := e.ttlKnown(secret); err != nil {
			return err
		}
		rotationID = e.Request
		if rotationID == "" {
			rotationID = e.NewRotationID(now)
		}
		c, v, err := k.Add(e.Rand)
		if err != nil {
			return err
		}
		change, reason = c, "KeyAdded"
		next = State{Phase: KeyAdded, RotationID: rotationID, From: k.Active, To: v, StartedAt: now, TransitionAt: now, Actor: e.Actor, NextRotationDue: st.NextRotationDue}
		msg = fmt.Sprintf("added %s; active stays %s (rotation %s)", keyring.Kid(v), keyring.Kid(k.Active), rotationID)
	case StepEmergency:
		rotationID = EmergencyIDPrefix + e.NewRotationID(now)
		c, v, err := k.Add(e.Rand)
		if err != nil {
			return err
		}
		change, reason = c, "EmergencyKeyAdded"
		next = State{Phase: KeyAdded, RotationID: rotationID, From: k.Active, To: v, StartedAt: now, TransitionAt: now, Actor: e.Actor,
			NextRotationDue: st.NextRotationDue, Emergency: e.Emergency}
		msg = fmt.Sprintf("emergency (%s): added %s; active stays %s until it is known everywhere (rotation %s)", e.Emergency, keyring.Kid(v), keyring.Kid(k.Active), rotationID)
		if st.InProgress() {
			msg += fmt.Sprintf("; supersedes rotation %s (%s)", st.RotationID, st.Phase)
		}
	case StepPromote:
		c, err := k.Promote(st.To)
		if err != nil {
			return err
		}
		change, reason, next = c, "KeyPromoted", st
		next.Phase, next.PromotedAt, next.TransitionAt = Promoted, now, now
		msg = fmt.Sprintf("active is now %s; %s stays for verification (rotation %s)", keyring.Kid(st.To), keyring.Kid(st.From), st.RotationID)
	case StepRetire:
		consumers, err := e.consumers(ctx)
		if err != nil {
			return err
		}
		var pinned []string
		for _, c := range consumers {
			pinned = append(pinned, c.Pinned...)
		}
		c, err := retire(k, st, pinned)
		if err != nil {
			return err
		}
		change, reason, next = c, "KeyRetired", st
		next.Phase, next.RetiredAt, next.TransitionAt = Retired, now, now
		msg = fmt.Sprintf("%s; active %s (rotation %s)", c.Summary, keyring.Kid(st.To), st.RotationID)
	case StepRollout:
	default:
		return fmt.Errorf("internal error: no action for step %s", d.Step)
	}
	if err := keyring.Validate(secretName(secret), keyring.Apply(secret.Data, change)); err != nil {
		return err
	}
	if d.Step == StepRollout {
		// A rollout holds the lease for minutes: it is taken in a write of its own before anything restarts.
		if err := e.acquire(ctx, secret, rotationID, now); err != nil {
			return err
		}
		e.printf("%s: %s — %s", secretName(secret), d.Step, d.Reason)
		return e.rollout(ctx, secret, st)
	}
	// Any other step is one write, and the lease goes with it: taking it separately would cost a request and
	// protect nothing more, since the write is resourceVersion-guarded either way.
	notice, err := e.claim(secret, rotationID, now)
	if err != nil {
		return err
	}
	e.printf("%s: %s — %s", secretName(secret), d.Step, d.Reason)
	if err := e.write(ctx, secret, change, next, reason, msg); err != nil {
		return err
	}
	e.tookOver(ctx, e.Seen, notice)
	return nil
}

// Abort stops the rotation in progress. Before the promotion it removes v(N+1) (nobody signed with it) and returns
// to Idle in one write. After it, `active` goes back to vN and v(N+1) stays, because tokens may already be signed
// with it; the consumers are then restarted so every signer uses vN again. A retired vN cannot come back: finish
// the rotation instead.
func (e *Engine) Abort(ctx context.Context) (Result, error) {
	for attempt := 0; ; attempt++ {
		secret, k, st, now, err := e.observe(ctx)
		if err != nil {
			return Result{}, err
		}
		res := Result{State: st, Keyring: k}
		var change keyring.Change
		next := st
		next.TransitionAt = now
		var reason, msg string
		switch st.Phase {
		case Idle:
			res.Decision = Decision{Step: StepNothing, Reason: "no rotation in progress: nothing to abort"}
			return res, nil
		case Retired:
			return res, &keyring.Violation{Secret: secretName(secret), Rule: keyring.RuleTransition, Detail: fmt.Sprintf("v%d is already removed, so the rotation cannot be undone", st.From), Fix: "finish it: helm rotate-key run RELEASE"}
		case Reverted:
			// already reverted: finish the rollout below
		case KeyAdded, RolledOut:
			if change, err = k.Remove(st.To, nil); err != nil {
				return res, err
			}
			next = State{Phase: Idle, RotationID: st.RotationID, From: st.From, To: st.To, StartedAt: st.StartedAt, FinishedAt: now, TransitionAt: now,
				Actor: e.Actor, NextRotationDue: st.NextRotationDue}
			reason, msg = "RotationAborted", fmt.Sprintf("rotation %s aborted before the promotion: removed %s; active stays %s", st.RotationID, keyring.Kid(st.To), keyring.Kid(st.From))
		case Waiting:
			if st.Aborted() {
				res.Decision = Decision{Step: StepNothing, Reason: fmt.Sprintf("rotation %s was already aborted: %s is active and %s is retired after %s", st.RotationID, keyring.Kid(st.To), keyring.Kid(st.From), st.RetireAfter.UTC().Format(time.RFC3339))}
				return res, nil
			}
			fallthrough
		case Promoted:
			if change, err = k.Promote(st.From); err != nil {
				return res, err
			}
			next.Phase = Reverted
			reason, msg = "RotationReverted", fmt.Sprintf("rotation %s aborted after the promotion: active is %s again; %s kept", st.RotationID, keyring.Kid(st.From), keyring.Kid(st.To))
		}
		if err := e.acquire(ctx, secret, st.RotationID, now); err != nil {
			if apierrors.IsConflict(err) && attempt < 20 {
				continue
			}
			return res, err
		}
		if st.Phase != Reverted {
			err = e.write(ctx, secret, change, next, reason, msg)
		}
		if err == nil && next.Phase == Reverted {
			if fresh, ferr := e.Cluster.Secret(ctx); ferr != nil {
				err = ferr
			} else {
				err = e.rollout(ctx, fresh, next)
			}
		}
		if apierrors.IsConflict(err) && attempt < 20 {
			continue
		}
		if err != nil {
			return res, err
		}
		_, _, st, _, err = e.observe(ctx)
		res.State = st
		res.Decision = Decision{Step: StepNothing, Reason: "rotation aborted"}
		return res, err
	}
}

// rollout restarts every consumer with the phase's restart value, waits until none has a pod from before, then
// records the next phase.
func (e *Engine) rollout(ctx context.Context, secret *corev1.Secret, st State) error {
	value := st.RotationID + "/" + RolloutName(st.Phase)
	consumers, err := e.consumers(ctx)
	if err != nil {
		return err
	}
	for _, c := range consumers {
		if err := e.Cluster.Restart(ctx, c.Ref, value); err != nil {
			return fmt.Errorf("restarting %s: %w", c.Ref, err)
		}
	}
	interval := min(FirstPoll, max(e.Poll, time.Millisecond))
	began := e.localNow()
	deadline := e.localNow().Add(e.RolloutTimeout)
	lastRenew := e.localNow()
	progress := map[ConsumerRef]string{}
	for {
		pending := 0
		for _, c := range consumers {
			rs, err := e.Cluster.Rollout(ctx, c.Ref, value)
			if err != nil {
				return fmt.Errorf("watching the rollout of %s: %w", c.Ref, err)
			}
			if rs.Progress != progress[c.Ref] {
				e.printf("  %s: %s", c.Ref, rs.Progress)
				progress[c.Ref] = rs.Progress
			}
			if !rs.Done {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		if e.localNow().After(deadline) {
			return fmt.Errorf("%w: %d of %d consumers still have pods from before the restart after %s; the rotation stays in phase %s and resumes where it stopped: rerun the same command", ErrRolloutTimeout, pending, len(consumers), e.RolloutTimeout, st.Phase)
		}
		if e.localNow().Sub(lastRenew) >= RenewEvery {
			fresh, err := e.renew(ctx)
			if err != nil {
				return err
			}
			secret, lastRenew = fresh, e.localNow()
		}
		if err := e.sleep(ctx, interval); err != nil {
			return err
		}
		limit := max(e.Poll, FirstPoll)
		if e.localNow().Sub(began) < QuickFor {
			limit = min(limit, QuickPoll)
		}
		interval = min(2*interval, limit)
	}
	// secret is our last write (the lease renewals included): if anyone else wrote the Secret during the rollout,
	// the write below conflicts and the run observes again.
	now, err := e.Cluster.Now(ctx)
	if err != nil {
		return err
	}
	next := st
	next.TransitionAt = now
	var reason, msg string
	switch st.Phase {
	case KeyAdded:
		next.Phase, reason, msg = RolledOut, "ConsumersRestarted", fmt.Sprintf("every consumer restarted after %s was added (%d workloads)", keyring.Kid(st.To), len(consumers))
	case Promoted:
		if err := e.ttlKnown(secret); err != nil && st.Emergency == "" {
			return err
		}
		next.Phase, next.RetireAfter, next.TTLUsed = Waiting, RetireAfter(now, e.Config.TTL), e.Config.TTL
		if st.Emergency != "" { // the leaked versions' tokens are rejected now: no TTL to wait for
			next.RetireAfter, next.TTLUsed = now.Truncate(time.Second), 0
		}
		next.NextRotationDue = NextRotationDue(next, e.Config.Interval, time.Time{})
		reason, msg = "ConsumersRestarted", fmt.Sprintf("no pod from before the promotion of %s is left; %s can be retired after %s (TTL %s, %s, + %s clock-skew margin)",
			keyring.Kid(st.To), keyring.Kid(st.From), next.RetireAfter.UTC().Format(time.RFC3339), e.Config.TTL, e.Config.TTLSource, ClockSkewMargin)
		if st.Emergency != "" {
			msg = fmt.Sprintf("no pod from before the emergency promotion of %s is left; every other version is retired now (%s)", keyring.Kid(st.To), st.Emergency)
		}
	case Reverted:
		if err := e.ttlKnown(secret); err != nil {
			return err
		}
		// The aborted version signed tokens until now: it becomes the outgoing version of a rotation back to the
		// old one, retired after the TTL like any other (so it is not trusted forever).
		next = State{Phase: Waiting, RotationID: st.RotationID, From: st.To, To: st.From, StartedAt: st.StartedAt, PromotedAt: st.TransitionAt,
			RetireAfter: RetireAfter(now, e.Config.TTL), TTLUsed: e.Config.TTL, TransitionAt: now, Actor: st.Actor}
		next.NextRotationDue = NextRotationDue(next, e.Config.Interval, time.Time{})
		reason, msg = "RotationAborted", fmt.Sprintf("rotation %s aborted: active %s; %s stays until every token signed with it has expired and can be retired after %s (TTL %s, %s)",
			st.RotationID, keyring.Kid(st.From), keyring.Kid(st.To), next.RetireAfter.UTC().Format(time.RFC3339), e.Config.TTL, e.Config.TTLSource)
	case Retired:
		next = State{Phase: Idle, RotationID: st.RotationID, From: st.From, To: st.To, StartedAt: st.StartedAt, PromotedAt: st.PromotedAt, RetireAfter: st.RetireAfter,
			RetiredAt: st.RetiredAt, FinishedAt: now, TransitionAt: now, Actor: st.Actor, Emergency: st.Emergency}
		next.NextRotationDue = NextRotationDue(next, e.Config.Interval, now)
		reason, msg = "RotationFinished", fmt.Sprintf("rotation %s finished: active %s; next rotation due %s", st.RotationID, keyring.Kid(st.To), next.NextRotationDue.UTC().Format(time.RFC3339))
	}
	return e.write(ctx, secret, keyring.Change{}, next, reason, msg)
}

// Consistent checks that the state annotations agree with the keyring they describe. Every transition writes data
// and state together, so a disagreement means a hand edit; acting on it could remove a version that is still needed
// (e.g. "abort before the promotion" on a state that names the wrong new version).
func Consistent(st State, k *keyring.Keyring) error {
	if !st.InProgress() {
		return nil
	}
	problem := ""
	_, hasTo := k.Keys[st.To]
	switch {
	case !hasTo:
		problem = fmt.Sprintf("the state names v%d as the new version, which is not in the keyring", st.To)
	case (st.Phase == KeyAdded || st.Phase == RolledOut) && (k.Active != st.From || st.To != k.Newest() || st.To <= st.From):
		problem = fmt.Sprintf("phase %s needs active = from (v%d) and to (v%d) = the newest version; the keyring has active v%d, newest v%d", st.Phase, st.From, st.To, k.Active, k.Newest())
	case st.Phase == Reverted && k.Active != st.From:
		problem = fmt.Sprintf("phase Reverted needs active = v%d, the keyring has v%d", st.From, k.Active)
	case (st.Phase == Promoted || st.Phase == Waiting || st.Phase == Retired) && k.Active != st.To:
		problem = fmt.Sprintf("phase %s needs active = v%d, the keyring has v%d", st.Phase, st.To, k.Active)
	}
	if problem == "" {
		return nil
	}
	return &keyring.Violation{Secret: k.Secret, Rule: keyring.RuleTransition, Detail: "the rotation state contradicts the keyring (edited by hand?): " + problem,
		Fix: "restore the state annotations or the keyring from what the Secret's Events record; nothing was changed"}
}

// ttlKnown refuses a step that would compute a retirement time from a TTL nobody configured.
func (e *Engine) ttlKnown(secret *corev1.Secret) error {
	if !e.Config.TTLDefaulted {
		return nil
	}
	return &keyring.Violation{Secret: secretName(secret), Rule: keyring.RuleTransition,
		Detail: "no token TTL is configured, and retiring a key after a guessed TTL can reject live tokens",
		Fix:    fmt.Sprintf("set the Secret annotation %s (seconds), or %s to the dotted path of the release value that holds the TTL (e.g. requestsProxy.tokenTtlSeconds), or pass --ttl", AnnoTTLSeconds, AnnoTTLPath)}
}

// retire is the retirement's data change: the outgoing version, or, in an emergency rotation, every version but the
// new active one (a leaked Secret exposed all of them). Pinned versions and the active one are never removed.
func retire(k *keyring.Keyring, st State, pinned []string) (keyring.Change, error) {
	outgoing := []int{st.From}
	if st.Emergency != "" {
		outgoing = outgoing[:0]
		for _, v := range k.Versions() {
			if v != st.To {
				outgoing = append(outgoing, v)
			}
		}
	}
	var all keyring.Change
	var removed []string
	for _, v := range outgoing {
		c, err := k.Remove(v, pinned)
		if err != nil {
			return keyring.Change{}, err
		}
		all.Delete = append(all.Delete, c.Delete...)
		removed = append(removed, keyring.Kid(v))
	}
	all.Summary = "removed " + strings.Join(removed, ", ")
	return all, nil
}

// write applies a data change and the next state (plus the renewed lease, or its release when the rotation goes
// Idle or starts waiting for the TTL) in one update; the result must still satisfy every keyring invariant.
func (e *Engine) write(ctx context.Context, secret *corev1.Secret, change keyring.Change, next State, reason, message string) error {
	updated := secret.DeepCopy()
	updated.Data = keyring.Apply(secret.Data, change)
	if err := keyring.Validate(secretName(secret), updated.Data); err != nil {
		return err
	}
	updated.Annotations = next.ApplyAnnotations(secret.Annotations)
	if next.Phase == Idle || next.Phase == Waiting { // the run stops here: the lease goes with the same write
		delete(updated.Annotations, AnnoLease)
		e.lease = nil
	} else if e.lease != nil {
		now, err := e.Cluster.Now(ctx)
		if err != nil {
			return err
		}
		e.lease.Renewed = now
		updated.Annotations[AnnoLease] = e.lease.Format()
	}
	written, err := e.Cluster.UpdateSecret(ctx, updated)
	if err != nil {
		return err
	}
	e.Seen = written
	e.Cluster.Event(ctx, written, corev1.EventTypeNormal, reason, message)
	e.printf("%s: %s", secretName(secret), message)
	return nil
}

// claim decides this run's lease from the one the Secret carries (e.lease; nothing is written): ours already, a
// new one, or a takeover (notice says whose). A lease held by another live run refuses the step.
func (e *Engine) claim(secret *corev1.Secret, rotationID string, now time.Time) (string, error) {
	current, err := ParseLease(secret.Annotations[AnnoLease])
	if err != nil {
		return "", err
	}
	if e.lease != nil && current != nil && current.Holder == e.Holder {
		return "", nil // ours, renewed with every write
	}
	lease, notice, err := DecideLease(current, e.Holder, rotationID, now, e.TakeOver, e.HolderAlive)
	if err != nil {
		return "", err
	}
	e.lease = &lease
	return notice, nil
}

// tookOver reports a lease taken from a dead run, once the write that took it (written) succeeded.
func (e *Engine) tookOver(ctx context.Context, written *corev1.Secret, notice string) {
	if notice == "" {
		return
	}
	e.printf("%s: %s", secretName(written), notice)
	e.Cluster.Event(ctx, written, corev1.EventTypeWarning, "LockTakenOver", notice)
}

// acquire takes or renews the lease in a write of its own (before a rollout).
func (e *Engine) acquire(ctx context.Context, secret *corev1.Secret, rotationID string, now time.Time) error {
	had := e.lease
	notice, err := e.claim(secret, rotationID, now)
	if err != nil || e.lease == had {
		return err
	}
	updated := secret.DeepCopy()
	if updated.Annotations == nil {
		updated.Annotations = map[string]string{}
	}
	updated.Annotations[AnnoLease] = e.lease.Format()
	written, err := e.Cluster.UpdateSecret(ctx, updated)
	if err != nil {
		e.lease = had
		return err
	}
	*secret = *written
	e.tookOver(ctx, written, notice)
	return nil
}

// renew refreshes the lease during a long rollout.
func (e *Engine) renew(ctx context.Context) (*corev1.Secret, error) {
	secret, err := e.Cluster.Secret(ctx)
	if err != nil {
		return nil, err
	}
	current, err := ParseLease(secret.Annotations[AnnoLease])
	if err != nil {
		return nil, err
	}
	if current == nil || current.Holder != e.Holder {
		return nil, fmt.Errorf("the rotation lock was taken over by %s while this run waited for a rollout; this run stops (the other one carries on)", holderOf(current))
	}
	now, err := e.Cluster.Now(ctx)
	if err != nil {
		return nil, err
	}
	e.lease.Renewed = now
	updated := secret.DeepCopy()
	updated.Annotations[AnnoLease] = e.lease.Format()
	return e.Cluster.UpdateSecret(ctx, updated)
}

// release removes our lease when the run stops with the rotation waiting.
func (e *Engine) release(ctx context.Context, secret *corev1.Secret) error {
	current, err := ParseLease(secret.Annotations[AnnoLease])
	if err != nil || current == nil || current.Holder != e.Holder {
		return nil
	}
	updated := secret.DeepCopy()
	delete(updated.Annotations, AnnoLease)
	_, err = e.Cluster.UpdateSecret(ctx, updated)
	e.lease = nil
	return err
}

// consumers finds the consumers once per run: the retirement's pinned-version check and every rollout of the run
// restart the same workloads (a workload created during the run is found by the next run, which restarts it
// after the retirement).
func (e *Engine) consumers(ctx context.Context) ([]Consumer, error) {
	if e.found == nil {
		found, err := e.Cluster.Consumers(ctx, e.Config.Consumers)
		if err != nil {
			return nil, err
		}
		e.found = found
	}
	return e.found, nil
}

// allowed reports whether this run may perform step (see Steps).
func (e *Engine) allowed(step Step) bool {
	if len(e.Steps) == 0 {
		return true
	}
	for _, s := range e.Steps {
		if s == step {
			return true
		}
	}
	return false
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

func holderOf(l *Lease) string {
	if l == nil {
		return "nobody (the lock was removed)"
	}
	return l.Holder
}

func secretName(s *corev1.Secret) string { return s.Namespace + "/" + s.Name }

func (e *Engine) printf(format string, args ...any) {
	if e.Out != nil {
		fmt.Fprintf(e.Out, format+"\n", args...)
	}
}
