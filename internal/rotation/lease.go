package rotation

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// LeaseDuration is how long a lease stays valid without renewal; a run renews it well before (RenewEvery).
const (
	LeaseDuration = 60 * time.Second
	RenewEvery    = 15 * time.Second
)

// maxLeaseSeconds bounds a lease's lifetime as read from the annotation.
const maxLeaseSeconds = 24 * 60 * 60

// Lease is the rotation lock, stored in the Secret's AnnoLease annotation, so taking it is one resourceVersion-
// guarded write of the Secret the rotation already may update (no extra RBAC). Holder names a process:
// "user@host pid N", or "pod NAME" in a hook Job.
type Lease struct {
	Holder     string
	RotationID string
	Renewed    time.Time
	Duration   time.Duration
}

// Format encodes the lease as its annotation value.
func (l Lease) Format() string {
	return fmt.Sprintf("holder=%s;rotation=%s;renewed=%s;seconds=%d", l.Holder, l.RotationID, l.Renewed.UTC().Format(time.RFC3339), int(l.Duration/time.Second))
}

// ParseLease decodes a lease annotation; an empty value is no lease.
func ParseLease(v string) (*Lease, error) {
	if v == "" {
		return nil, nil
	}
	l := &Lease{}
	for _, part := range strings.Split(v, ";") {
		k, val, _ := strings.Cut(part, "=")
		switch k {
		case "holder":
			l.Holder = val
		case "rotation":
			l.RotationID = val
		case "renewed":
			t, err := time.Parse(time.RFC3339, val)
			if err != nil {
				return nil, fmt.Errorf("lease annotation %s: renewed=%q is not an RFC 3339 time", AnnoLease, val)
			}
			l.Renewed = t
		case "seconds":
			// A lifetime beyond a day is no lease any writer makes (60 s; the runbook's 180 s), and a huge one would
			// overflow into a negative duration: a live lock read as expired.
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 || n > maxLeaseSeconds {
				return nil, fmt.Errorf("lease annotation %s: seconds=%q is not a number of seconds between 1 and %d", AnnoLease, val, maxLeaseSeconds)
			}
			l.Duration = time.Duration(n) * time.Second
		}
	}
	if l.Holder == "" || l.Renewed.IsZero() || l.Duration == 0 {
		return nil, fmt.Errorf("lease annotation %s=%q lacks holder, renewed or seconds", AnnoLease, v)
	}
	return l, nil
}

// Expired reports whether the lease lapsed at now.
func (l *Lease) Expired(now time.Time) bool { return !now.Before(l.Renewed.Add(l.Duration)) }

// LockHeldError refuses a run because another live run holds the lease.
type LockHeldError struct {
	Lease *Lease
	Age   time.Duration
}

func (e *LockHeldError) Error() string {
	if RunbookHolder(e.Lease.Holder) {
		return fmt.Sprintf("the runbook's manual rollout holds the rotation lock: %s (rotation %s), renewed %s ago; nothing was changed. It renews the lock while it runs and lets it lapse %s after it stops: wait, then rerun (helm rotate-key status shows the holder)",
			e.Lease.Holder, e.Lease.RotationID, e.Age.Round(time.Second), (e.Lease.Duration - e.Age).Round(time.Second))
	}
	return fmt.Sprintf("another run holds the rotation lock: %s (rotation %s), renewed %s ago, valid for %s more; nothing was changed. Wait for it to finish (helm rotate-key status shows progress), or if that run is dead, rerun with --take-over",
		e.Lease.Holder, e.Lease.RotationID, e.Age.Round(time.Second), (e.Lease.Duration - e.Age).Round(time.Second))
}

// DecideLease decides whether holder may take the lease at now. It returns the lease to write and a notice for
// the operator when it takes over another run's lease (expired, dead, or forced with takeOver).
// holderAlive reports whether another holder is known to be alive (false for a dead process on this host).
func DecideLease(current *Lease, holder, rotationID string, now time.Time, takeOver bool, holderAlive func(string) bool) (Lease, string, error) {
	next := Lease{Holder: holder, RotationID: rotationID, Renewed: now, Duration: LeaseDuration}
	switch {
	case current == nil || current.Holder == holder:
		return next, "", nil
	case current.Expired(now):
		return next, fmt.Sprintf("took over the expired lock of %s (last renewed %s ago)", current.Holder, now.Sub(current.Renewed).Round(time.Second)), nil
	case holderAlive != nil && !holderAlive(current.Holder):
		return next, fmt.Sprintf("took over the lock of %s: that process is gone", current.Holder), nil
	case takeOver && !RunbookHolder(current.Holder):
		return next, fmt.Sprintf("took over the live lock of %s because of --take-over", current.Holder), nil
	}
	return Lease{}, "", &LockHeldError{Lease: current, Age: now.Sub(current.Renewed)}
}

// RunbookHolder reports whether a lease is held by the runbook's manual rollout (block B2): it renews its lease every
// minute while its shell lives and lets it lapse 3 minutes after, so a live one is never taken over, not even with
// --take-over — a dead one frees itself.
func RunbookHolder(holder string) bool { return strings.HasPrefix(holder, "runbook ") }
