package traffic

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Report is what a run recorded, summed up.
type Report struct {
	Driver Driver
	// Issued tokens; VerifiedTokens of them got at least one verifier answer; Presentations answers in all.
	Issued, VerifiedTokens, Presentations int
	// RejectedUnexpired (answers) breaks the promise; AcceptedExpired breaks the verifier. Both must be 0 on a good
	// path. RejectedTokens is how many distinct tokens had at least one unexpired refusal.
	RejectedUnexpired, AcceptedExpired, RejectedTokens int
	// ExpiredRejected counts the tokens (each once) that were refused when presented after their exp.
	ExpiredRejected int
	// Ambiguous counts the answers given too close to exp to judge; Judged those that were judged while live.
	Ambiguous, JudgedLive int
	// IssueErrors counts attempts to get a token that got none; Unreachable presentations no attempt got answered;
	// Failures are the first reasons.
	IssueErrors, Unreachable int
	Failures                 []string
	// KeyBytesChanged names the keyring's data keys whose bytes changed while the run watched (Driver.Keyring):
	// every token signed with the old bytes is then refused wherever the new ones arrived.
	KeyBytesChanged []string
	// ByKid counts the issued tokens per signing kid.
	ByKid    map[string]int
	Duration time.Duration
	// Records are every answer, in the order they came.
	Records []Presentation
}

func (r *Run) report() Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := Report{Driver: r.d, Issued: r.issued, Presentations: len(r.records), IssueErrors: r.issueErrors, Unreachable: r.unreachable,
		Failures: append([]string(nil), r.failures...),
		ByKid:    map[string]int{}, Duration: r.stopped.Sub(r.started), Records: append([]Presentation(nil), r.records...)}
	if r.stopped.IsZero() { // a report of a run still going
		rep.Duration = time.Since(r.started)
	}
	seen, rejected, expiredRefused := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, p := range r.records {
		id := p.Issuer + "/" + p.ID
		if !seen[id] && p.answered() {
			seen[id] = true
			rep.VerifiedTokens++
			rep.ByKid[p.Kid]++
		}
		switch r.d.Classify(p) {
		case Unexpired:
			rep.JudgedLive++
			if !p.Accepted {
				rep.RejectedUnexpired++
				rejected[id] = true
			}
		case Expired:
			if p.Accepted {
				rep.AcceptedExpired++
			} else if p.answered() {
				expiredRefused[id] = true
			}
		default:
			rep.Ambiguous++
		}
	}
	rep.RejectedTokens, rep.ExpiredRejected = len(rejected), len(expiredRefused)
	for k, digests := range r.keyDigests {
		if len(digests) > 1 {
			rep.KeyBytesChanged = append(rep.KeyBytesChanged, k)
		}
	}
	sort.Strings(rep.KeyBytesChanged)
	return rep
}

// answered reports whether a verifier answered (as opposed to an attempt that reached none).
func (p Presentation) answered() bool { return p.Reason != "no-endpoint" && p.Reason != "no-answer" }

// String is the one line a test prints per run.
func (r Report) String() string {
	kids := make([]string, 0, len(r.ByKid))
	for k, n := range r.ByKid {
		kids = append(kids, fmt.Sprintf("%s:%d", k, n))
	}
	sort.Strings(kids)
	return fmt.Sprintf("issued %d, verified %d tokens in %d presentations (%d judged live, %d too close to exp), rejected-unexpired %d (%d tokens), accepted-expired %d, expired-rejected %d tokens, failed attempts %d issue + %d unanswered, by kid [%s], %s (%.1f tokens/s)",
		r.Issued, r.VerifiedTokens, r.Presentations, r.JudgedLive, r.Ambiguous, r.RejectedUnexpired, r.RejectedTokens, r.AcceptedExpired, r.ExpiredRejected, r.IssueErrors, r.Unreachable,
		strings.Join(kids, " "), r.Duration.Round(time.Second), float64(r.Issued)/r.Duration.Seconds()) + r.keysChanged()
}

func (r Report) keysChanged() string {
	if len(r.KeyBytesChanged) == 0 {
		return ""
	}
	return ", KEY BYTES CHANGED: " + strings.Join(r.KeyBytesChanged, " ")
}

// Rejections describes up to n unexpired tokens that were refused: what a failing test prints.
func (r Report) Rejections(n int) string {
	var b strings.Builder
	for _, p := range r.Records {
		if n == 0 {
			break
		}
		if r.Driver.Classify(p) == Unexpired && !p.Accepted {
			fmt.Fprintf(&b, "  kid %s issued %s by %s, presented %s to %s (%s before exp): %s\n", p.Kid, p.IssuedAt.Format("15:04:05"), p.Issuer,
				p.At.Format("15:04:05.000"), p.Pod, p.Expires.Sub(p.At).Round(time.Millisecond), p.Reason)
			n--
		}
	}
	return b.String()
}

// Where returns the presentations that satisfy keep.
func (r Report) Where(keep func(Presentation) bool) []Presentation {
	var out []Presentation
	for _, p := range r.Records {
		if keep(p) {
			out = append(out, p)
		}
	}
	return out
}

// Latency returns the q-quantile (0..1) of the verifier's answer time over the presentations made in [from, to).
func (r Report) Latency(q float64, from, to time.Time) time.Duration {
	var ls []time.Duration
	for _, p := range r.Records {
		if !p.At.Before(from) && p.At.Before(to) {
			ls = append(ls, p.Latency)
		}
	}
	if len(ls) == 0 {
		return 0
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i] < ls[j] })
	return ls[min(len(ls)-1, int(q*float64(len(ls))))]
}
