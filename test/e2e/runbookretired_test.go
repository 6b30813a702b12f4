package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// retiredKeyBack: a retired version back in phase Retired, before the rotation's last rollout (round 30: a helm
// rollback brought v1 back and made it active; after REPAIR and RESTART Where am I? said only "next: B2", and B2
// called the rotation finished while v1 still verified tokens). Where am I? warns in Retired and sends to EXTRA
// when v1 may go now, else to B2 and then EXTRA; the plugin's path stops first; B2's finish names what is left.
func retiredKeyBack(t *testing.T, p *runbookPass) {
	p.preparation(t)
	for _, id := range []string{"B1", "B2", "B3", "B2", "B4", "B5"} {
		p.pasteID(t, id, 0)
	}
	p.expectKeyring(t, "active,"+p.style+"v2", 2, rotation.Retired)
	v1 := base64.StdEncoding.EncodeToString(make32())
	const back = "v1 was retired already (rotation "
	// v1 back, 'active' untouched: no token signed with it lives (retire-after passed), so it goes before the rollout.
	p.handEdit(t, fmt.Sprintf(`{"data":{%q:%q}}`, p.style+"v1", v1))
	p.refused(t, "A5", "the plugin's finish while a retired version is back (the plugin would refuse too)")
	p.refused(t, "B2", "the last rollout, which would hand v1 to every consumer, while EXTRA may remove it now (round 31)")
	p.extraRemoves(t, back, p.style+"v1")
	restart(t, p)
	p.expectKeyring(t, "active,"+p.style+"v2", 2, rotation.Retired)
	// v1 back and active: the repair comes first; signers restarted meanwhile signed with v1, so it stays until
	// repaired-until, and the rotation's last rollout (by hand: the plugin refuses while v1 is there) goes first.
	p.handEdit(t, fmt.Sprintf(`{"data":{%q:%q,"active":%q}}`, p.style+"v1", v1, base64.StdEncoding.EncodeToString([]byte("v1"))))
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "next:    block REPAIR") {
		t.Fatalf("Where am I? must lead with the moved active key:\n%s", where)
	}
	p.pasteID(t, "REPAIR", 0)
	restart(t, p)
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, back) || !strings.Contains(where, "next:    the rotation's last rollout by hand: block B2") || !strings.Contains(where, "then block EXTRA removes v1 (from ") {
		t.Fatalf("Where am I? must warn that v1 is back in Retired, and send to B2, then EXTRA once the repair's tokens expired:\n%s", where)
	}
	p.refused(t, "A5", "the plugin's finish while a retired version is back")
	p.refused(t, "EXTRA", "removing v1 while tokens signed with it during the repair live")
	if out := p.pasteID(t, "B2", 0); !strings.Contains(out, "but v1 is still in the keyring and verifies tokens") || strings.Contains(out, "put it in the calendar") {
		t.Fatalf("B2's finish must name the version left, not send to B6:\n%s", out)
	}
	p.expectKeyring(t, "active,"+p.style+"v1,"+p.style+"v2", 2, rotation.Idle)
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "retired v1, but it is back in the keyring") || !strings.Contains(where, "next:    block EXTRA (removes v1") {
		t.Fatalf("in Idle Where am I? must still warn and send to EXTRA:\n%s", where)
	}
	p.refused(t, "B6", "the calendar while a retired version is back")
	s, err := cluster.Client.CoreV1().Secrets(p.ns).Get(context.Background(), p.secret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sleepPast(t, s.Annotations[rotation.Prefix+"repaired-until"])
	p.extraRemoves(t, "retired v1, but it is back in the keyring", p.style+"v1")
	restart(t, p)
	p.expectKeyring(t, "active,"+p.style+"v2", 2, rotation.Idle)
	p.pasteID(t, "B6", 0)
	// Rounds 31 and 32: a version retired by an earlier rotation (not this one's outgoing) back while the plugin's
	// rotation waits. The plugin refuses to carry the rotation on (at the latest once it has retired v2), so A5
	// stops; no token signed with v1 lives, so EXTRA removes it now — not after this rotation's TTL wait — and
	// then Part A carries on.
	p.plugin(t, 3, "run", p.release, "--yes", "--local", "--force", "--reason", "rehearsal")
	p.handEdit(t, fmt.Sprintf(`{"data":{%q:%q}}`, p.style+"v1", v1))
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "next:    block EXTRA (removes v1, now)") || !strings.Contains(where, "WARNING: v1 beside this rotation's v2 and v3") {
		t.Fatalf("Where am I? must warn and send to EXTRA at once:\n%s", where)
	}
	p.refused(t, "A5", "the plugin's finish while an earlier retired version is back")
	if out := p.pasteID(t, "EXTRA", 0); !strings.Contains(out, "removed "+p.style+"v1") {
		t.Fatalf("EXTRA must remove v1 during the rotation:\n%s", out)
	}
	restart(t, p)
	p.expectKeyring(t, "active,"+p.style+"v2,"+p.style+"v3", 3, rotation.Waiting)
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "Part A: after that time, A5") {
		t.Fatalf("with v1 gone Part A carries on:\n%s", where)
	}
}
