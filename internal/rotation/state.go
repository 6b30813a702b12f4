// Package rotation holds the rotation's phases and their transition table, its state and configuration as they live
// on the keyring Secret, the lock, the timing rules and the decision of what to do next. It is pure: functions take
// values (the Secret's annotations, the API server's time) and return values, and it imports no Kubernetes
// package, so the guard reads it without the engine (package engine acts on the decisions).
package rotation

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Prefix is the one annotation prefix this project owns on the keyring Secret.
const Prefix = "rotate-key.tracebloc.io/"

// EmergencyIDPrefix starts the id of every emergency rotation, the plugin's and the runbook's.
const EmergencyIDPrefix = "emergency-"

// SchemaVersion is the version of the state annotations. A rotation spans 90 days and several plugin releases:
// a newer plugin reads older schemas; an older plugin refuses a newer one instead of misreading it.
const SchemaVersion = 1

// State annotation keys.
const (
	AnnoSchema          = Prefix + "schema"
	AnnoPhase           = Prefix + "phase"
	AnnoRotationID      = Prefix + "rotation-id"
	AnnoFrom            = Prefix + "from"
	AnnoTo              = Prefix + "to"
	AnnoStartedAt       = Prefix + "started-at"
	AnnoPromotedAt      = Prefix + "promoted-at"
	AnnoRetireAfter     = Prefix + "retire-after"
	AnnoRetiredAt       = Prefix + "retired-at"
	AnnoFinishedAt      = Prefix + "finished-at"
	AnnoNextRotationDue = Prefix + "next-rotation-due"
	AnnoTransitionAt    = Prefix + "last-transition-at"
	AnnoActor           = Prefix + "actor"
	AnnoTTLUsed         = Prefix + "ttl-seconds-used"
	// AnnoTTLInForce is the highest token TTL a run saw configured since the active version was promoted: tokens
	// keep the TTL they were signed with, so a TTL lowered later must not shorten the wait before that version is
	// retired.
	AnnoTTLInForce = Prefix + "ttl-seconds-in-force"
	AnnoLease      = Prefix + "lease"
	// AnnoEmergency marks an emergency rotation (a leaked key) with its reason: it retires every version but the
	// new one as soon as the new one is active everywhere, without waiting for the TTL.
	AnnoEmergency = Prefix + "emergency"
)

// State is the rotation state stored in the Secret's annotations.
type State struct {
	Phase           Phase
	RotationID      string
	From, To        int
	StartedAt       time.Time
	PromotedAt      time.Time
	RetireAfter     time.Time
	RetiredAt       time.Time
	FinishedAt      time.Time
	NextRotationDue time.Time
	TransitionAt    time.Time
	Actor           string
	TTLUsed         time.Duration
	// Emergency is the reason of an emergency rotation ("" for a scheduled one).
	Emergency string
	// RetiredUpTo is the highest version ever removed (AnnoRetiredUpTo, and what this state's rotation removed):
	// no version at or below it may come back, and no new key gets its number.
	RetiredUpTo int
	// TTLInForce is AnnoTTLInForce (0: none recorded).
	TTLInForce time.Duration
}

// Aborted reports whether the rotation is a rotation back after an abort past the promotion: the outgoing version
// (From) is then the newer one, kept until its tokens expire. A forward rotation always adds a newer To.
func (s State) Aborted() bool { return s.From > s.To }

// InProgress reports whether a rotation has started and not finished.
func (s State) InProgress() bool { return s.Phase != Idle }

// NextVersion is the version the next rotation adds to a keyring whose newest version is newest: one above it and
// above both versions the last rotation named. A number that an abort removed again before its promotion is never
// given to a new key: its old bytes may still sit in Helm's release records (which the runbook's REPAIR restores
// from) or in a running pod's memory, where nothing could tell the two keys apart.
func (s State) NextVersion(newest int) int {
	return max(newest, s.From, s.To, s.RetiredUpTo) + 1
}

// ParseState reads the state annotations; a Secret without them is Idle.
func ParseState(annotations map[string]string) (State, error) {
	s := State{Phase: Idle}
	if v, ok := annotations[AnnoSchema]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return s, fmt.Errorf("annotation %s=%q is not a schema version", AnnoSchema, v)
		}
		if n > SchemaVersion {
			return s, fmt.Errorf("the rotation state was written by a newer rotate-key (schema %d, this one reads up to %d): upgrade the plugin (helm plugin update rotate-key)", n, SchemaVersion)
		}
	}
	if p, ok := annotations[AnnoPhase]; ok {
		if !slices.Contains(Phases(), Phase(p)) {
			return s, fmt.Errorf("annotation %s=%q is not a known phase", AnnoPhase, p)
		}
		s.Phase = Phase(p)
	}
	var err error
	s.RotationID = annotations[AnnoRotationID]
	s.Actor = annotations[AnnoActor]
	s.Emergency = annotations[AnnoEmergency]
	for key, dst := range map[string]*int{AnnoFrom: &s.From, AnnoTo: &s.To} {
		if v, ok := annotations[key]; ok && err == nil {
			n, ok := parseKid(v)
			if !ok {
				err = fmt.Errorf("annotation %s=%q is not a key id vN", key, v)
			}
			*dst = n
		}
	}
	for key, dst := range map[string]*time.Time{AnnoStartedAt: &s.StartedAt, AnnoPromotedAt: &s.PromotedAt, AnnoRetireAfter: &s.RetireAfter,
		AnnoRetiredAt: &s.RetiredAt, AnnoFinishedAt: &s.FinishedAt, AnnoNextRotationDue: &s.NextRotationDue, AnnoTransitionAt: &s.TransitionAt} {
		if v, ok := annotations[key]; ok && err == nil {
			*dst, err = time.Parse(time.RFC3339, v)
			if err != nil {
				err = fmt.Errorf("annotation %s=%q is not an RFC 3339 time", key, v)
			}
		}
	}
	for key, dst := range map[string]*time.Duration{AnnoTTLUsed: &s.TTLUsed, AnnoTTLInForce: &s.TTLInForce} {
		if v, ok := annotations[key]; ok && err == nil {
			n, perr := strconv.ParseInt(v, 10, 64)
			if perr != nil || n < 0 || n > int64(MaxTTL/time.Second) {
				err = fmt.Errorf("annotation %s=%q is not a number of seconds up to %d", key, v, int64(MaxTTL/time.Second))
			}
			*dst = time.Duration(n) * time.Second
		}
	}
	if err == nil {
		mark, present := annotations[AnnoRetiredUpTo]
		s.RetiredUpTo, err = s.retiredMark(mark, present)
	}
	if err == nil && s.InProgress() && (s.RotationID == "" || s.From == 0 || s.To == 0) {
		err = fmt.Errorf("phase %s without a rotation id and versions: the state annotations were edited by hand", s.Phase)
	}
	if err == nil && s.InProgress() && s.Emergency != "" && !strings.HasPrefix(s.RotationID, EmergencyIDPrefix) {
		// An emergency retires without a TTL wait, so it counts only when the rotation was started as one (its id
		// and the reason are written together): an emergency annotation added to a running rotation is a hand edit.
		err = fmt.Errorf("annotation %s on rotation %s, which was not started as an emergency: the state annotations were edited by hand; remove the annotation (an emergency is started with --emergency)", AnnoEmergency, s.RotationID)
	}
	waits := false // a phase whose next step waits for retire-after (rotation.Table's Until)
	if t, ok := Forward(s.Phase); ok && t.Until != nil {
		waits = true
	}
	if err == nil && waits && s.RetireAfter.IsZero() {
		// A missing retire-after must never read as "retire now": the outgoing key's tokens may still be live.
		err = fmt.Errorf("phase %s without %s: the state annotations were edited by hand; restore it (promoted-at + the TTL + 60 s is the earliest safe value) before anything retires v%d", s.Phase, AnnoRetireAfter, s.From)
	}
	if err == nil && waits {
		// retire-after is never earlier than the promotion plus the TTL it was computed with: an edit that moves it
		// earlier would retire a key whose tokens live (an emergency has no TTL: its floor is the promotion).
		floor := s.PromotedAt.Add(s.TTLUsed)
		switch {
		case s.PromotedAt.IsZero() || (s.Emergency == "" && s.TTLUsed == 0):
			err = fmt.Errorf("phase %s without %s or %s: the state annotations were edited by hand; nothing retires v%d until they are restored", s.Phase, AnnoPromotedAt, AnnoTTLUsed, s.From)
		case s.RetireAfter.Before(floor):
			err = fmt.Errorf("%s %s is earlier than %s + %s (%s): the state annotations were edited by hand; nothing retires v%d until it is restored",
				AnnoRetireAfter, s.RetireAfter.UTC().Format(time.RFC3339), AnnoPromotedAt, AnnoTTLUsed, floor.UTC().Format(time.RFC3339), s.From)
		}
	}
	return s, err
}

// Annotations returns the state as annotations: every state key, with "" for the ones unset, so that a merge patch
// or an update removes stale values.
func (s State) Annotations() map[string]string {
	t := func(v time.Time) string {
		if v.IsZero() {
			return ""
		}
		return v.UTC().Format(time.RFC3339)
	}
	kid := func(v int) string {
		if v == 0 {
			return ""
		}
		return "v" + strconv.Itoa(v)
	}
	_, high := s.removedBy() // a state built by a transition carries what it removed into the mark
	seconds := func(d time.Duration) string {
		if d <= 0 {
			return ""
		}
		return strconv.FormatInt(int64(d/time.Second), 10)
	}
	return map[string]string{
		AnnoSchema: strconv.Itoa(SchemaVersion), AnnoPhase: string(s.Phase), AnnoRotationID: s.RotationID,
		AnnoFrom: kid(s.From), AnnoTo: kid(s.To), AnnoStartedAt: t(s.StartedAt), AnnoPromotedAt: t(s.PromotedAt),
		AnnoRetireAfter: t(s.RetireAfter), AnnoRetiredAt: t(s.RetiredAt), AnnoFinishedAt: t(s.FinishedAt),
		AnnoNextRotationDue: t(s.NextRotationDue), AnnoTransitionAt: t(s.TransitionAt), AnnoActor: s.Actor, AnnoTTLUsed: seconds(s.TTLUsed), AnnoTTLInForce: seconds(s.TTLInForce),
		AnnoEmergency: s.Emergency, AnnoRetiredUpTo: kid(max(s.RetiredUpTo, high)),
	}
}

// ApplyAnnotations writes the state into a copy of annotations, deleting the state keys that are unset.
func (s State) ApplyAnnotations(annotations map[string]string) map[string]string {
	out := make(map[string]string, len(annotations)+8)
	for k, v := range annotations {
		out[k] = v
	}
	for k, v := range s.Annotations() {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// String summarises the state for logs and Events.
func (s State) String() string {
	if !s.InProgress() {
		if s.NextRotationDue.IsZero() {
			return "Idle"
		}
		return "Idle, next rotation due " + s.NextRotationDue.UTC().Format(time.RFC3339)
	}
	if s.Emergency != "" {
		return fmt.Sprintf("%s (emergency rotation %s, v%d -> v%d)", s.Phase, s.RotationID, s.From, s.To)
	}
	return fmt.Sprintf("%s (rotation %s, v%d -> v%d)", s.Phase, s.RotationID, s.From, s.To)
}

func parseKid(s string) (int, bool) {
	if !strings.HasPrefix(s, "v") {
		return 0, false
	}
	n, err := strconv.Atoi(s[1:])
	return n, err == nil && n > 0 && strconv.Itoa(n) == s[1:]
}

// AnnoRequests lists the rotation requests (the chart value rotation.request) that have started a rotation, newest
// last, space-separated. It is not part of State: no transition rewrites it, and a manual rotation leaves it
// alone. A request starts one rotation, ever, even when other rotations ran since or a rollback brings an older
// request back into the release's values.
const AnnoRequests = Prefix + "requests-started"

// maxRequestsKept bounds AnnoRequests (ids are at most 63 characters).
const maxRequestsKept = 10

// RequestStarted reports whether request has already started a rotation: it is the rotation in the state or one
// of the requests recorded.
func RequestStarted(annotations map[string]string, s State, request string) bool {
	if request == s.RotationID {
		return true
	}
	for _, r := range strings.Fields(annotations[AnnoRequests]) {
		if r == request {
			return true
		}
	}
	return false
}

// RecordRequest returns the AnnoRequests value with request added (the oldest dropped past the bound).
func RecordRequest(annotations map[string]string, request string) string {
	list := append(strings.Fields(annotations[AnnoRequests]), request)
	if len(list) > maxRequestsKept {
		list = list[len(list)-maxRequestsKept:]
	}
	return strings.Join(list, " ")
}
