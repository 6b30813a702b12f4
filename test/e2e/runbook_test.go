package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/tracebloc/helm-rotate-key/internal/action/actiontest"
	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// TestRunbookIsFollowableCold follows the operator runbook the way the ticket's acceptance test says: every block
// pasted as is into a NEW bash (no `set -e`, nothing carried over but the block the runbook says to paste into
// every new shell), against the cluster-in-a-box, on each keyring layout the runbook claims:
//
//	(a) the example chart (library, key.vN, Secret <release>-requests-proxy-admin, hook Jobs);
//	(b) a chart without the library: lookup + keep, Secret <release>-requests-proxy-keys with v1/v2, an unrelated
//	    Secret <release>-requests-proxy-admin, the TTL at requestsProxy.tokenTtlSeconds, volume consumers whose
//	    pods carry only `app: <name>`;
//	(c) a single signing key without versions (the runbook must stop and send the operator to MIGRATIONS).
//
// Part A runs on Helm 3 and Helm 4 (a); Part B on (a) and (b) by following "Where am I?" after every block (the
// interruption test: each block's successor is found from the cluster alone, in a new shell). Out of order — the
// retire block early, the add block twice, the promote block before the rollout, … — every mutating block must
// refuse and leave the Secret byte-identical. The emergency blocks run in the Waiting phase, with the plugin and
// by hand. Every block not marked skip must run in some pass; no output may contain key bytes.
func TestRunbookIsFollowableCold(t *testing.T) {
	t.Parallel() // a parent: its passes share the suite's slots with every other long test
	rb, err := testcluster.LoadRunbook(cluster.Root)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ran := map[int]bool{}
	counts := map[string]int{}
	for _, pass := range runbookPasses() {
		t.Run(pass.name, func(t *testing.T) {
			parallel(t, pass.cost)
			p := newRunbookPass(t, rb, pass)
			pass.run(t, p)
			p.noKeyInOutputs(t)
			mu.Lock()
			defer mu.Unlock()
			for _, s := range p.steps {
				ran[s.Block.Line] = true
			}
			counts[pass.name] = len(p.steps)
			t.Logf("%s (layout %s, Helm %d): %d blocks pasted, each into a new shell", pass.name, pass.layout, pass.helm, len(p.steps))
		})
	}
	t.Cleanup(func() {
		var skipped []string
		for _, b := range rb.Blocks {
			switch {
			case b.Skip != "":
				skipped = append(skipped, fmt.Sprintf("line %d (%s)", b.Line, b.Skip))
			case !ran[b.Line] && !b.EveryShell && !t.Failed():
				t.Errorf("%s:%d (%s): an unmarked block ran in no pass", testcluster.RunbookPath, b.Line, b.Section)
			}
		}
		names := make([]string, 0, len(counts))
		for n, c := range counts {
			names = append(names, fmt.Sprintf("%s=%d", n, c))
		}
		sort.Strings(names)
		t.Logf("runbook: %d shell blocks; blocks pasted per pass: %s; skipped as marked: %s", len(rb.Blocks), strings.Join(names, " "), strings.Join(skipped, "; "))
	})
}

type runbookPassSpec struct {
	name   string
	layout string // a, b or c
	helm   int
	run    func(t *testing.T, p *runbookPass)
	// tokenApp runs the layout's applications as the token app on the runner node, for real traffic.
	tokenApp bool
	// cost is how long the pass takes on a quiet machine (the order the suite runs its tests in).
	cost time.Duration
	// ttl is the layout's token TTL in seconds (0: 60). A pass that damages the keyring while a rotation waits
	// needs the wait to outlast its checks on a loaded machine.
	ttl int
}

func runbookPasses() []runbookPassSpec {
	return []runbookPassSpec{
		{"part-a-helm3", "a", 3, partA, false, 300 * time.Second, 150},
		{"part-a-helm4", "a", 4, partA, false, 300 * time.Second, 150},
		{"part-b-example", "a+cronjob", 3, partBFollowed, true, 440 * time.Second, 0},
		{"part-b-plain-chart", "b", 4, partBFollowed, true, 440 * time.Second, 0},
		{"single-key", "c", 3, singleKey, false, 10 * time.Second, 0},
		{"out-of-order-abort-emergency", "a", 4, outOfOrder, false, 330 * time.Second, 0},
		{"switch-plugin-and-hand", "a+cronjob", 3, switchPaths, false, 180 * time.Second, 0},
		{"emergency-plugin", "b", 3, emergencyPlugin, false, 810 * time.Second, 0},
		{"retired-key-back", "a", 4, retiredKeyBack, false, 480 * time.Second, 0},
	}
}

// runbookPass is one release on one layout, and the operator's new shells for it.
type runbookPass struct {
	rb      *testcluster.Runbook
	shell   *testcluster.OperatorShell
	h       *testcluster.Helm
	ns      string
	release string
	secret  string // the keyring Secret (layout c: the single-key Secret)
	style   string // "key." or ""
	cron    bool   // the chart's rotation CronJob is installed
	steps   []testcluster.Step
	// signer and verifier select the applications' pods (for the traffic driver).
	signer, verifier map[string]string
}

func newRunbookPass(t *testing.T, rb *testcluster.Runbook, spec runbookPassSpec) *runbookPass {
	ctx := context.Background()
	p := &runbookPass{rb: rb, h: newHelm(t, spec.helm), ns: namespace(t, "runbook-"+spec.layout[:1], nil), release: "requests-proxy"}
	var out string
	var err error
	switch spec.layout {
	case "a", "a+cronjob":
		p.secret, p.style, p.cron = p.release+"-requests-proxy-admin", "key.", spec.layout == "a+cronjob"
		p.signer, p.verifier = exampleApps(p.release)
		ttl := spec.ttl
		if ttl == 0 {
			ttl = 60
		}
		args := []string{"--set", fmt.Sprintf("tokenTtlSeconds=%d", ttl), "--set", fmt.Sprintf("rotate-key.schedule.enabled=%v", spec.layout == "a+cronjob"), "--wait", "--timeout", "2m"}
		if spec.tokenApp { // both read their keys from env at start: only the restarts the runbook orders make them see a change
			args = append(args, testcluster.TokenApp{SignerKeys: "env", VerifierKeys: "env"}.Values()...)
		}
		out, err = installExample(ctx, p.h, p.ns, p.release, args...)
	case "b":
		p.secret = p.release + "-requests-proxy-keys"
		p.signer, p.verifier = map[string]string{"app": p.release + "-jobs-manager"}, map[string]string{"app": p.release + "-requests-proxy"}
		args := append([]string{"-n", p.ns, "install", p.release, runbookChart("runbook-plain"), "--set", "requestsProxy.tokenTtlSeconds=60", "--wait", "--timeout", "2m"}, testcluster.PlainShortMarginValues()...)
		if spec.tokenApp { // the fixture mounts the keys as a volume, for both
			args = append(args, testcluster.TokenApp{SignerKeys: "volume", VerifierKeys: "volume", Naming: "vN", Env: []corev1.EnvVar{{Name: "TOKEN_TTL_SECONDS", Value: "60"}}}.Values()...)
		}
		out, err = p.h.Run(ctx, args...)
	case "c":
		p.secret = p.release + "-requests-proxy-admin"
		out, err = p.h.Run(ctx, "-n", p.ns, "install", p.release, runbookChart("runbook-single-key"), "--wait", "--timeout", "2m")
	}
	if err != nil {
		t.Fatalf("install layout %s: %v\n%s", spec.layout, err, out)
	}
	if p.shell, err = testcluster.NewOperatorShell(t.TempDir(), p.h, cluster.Tools.Kubectl, cluster.Kubeconfig, p.ns, p.release); err != nil {
		t.Fatal(err)
	}
	p.shell.PasteFirst(rb.EveryShell)
	return p
}

func runbookChart(name string) string {
	return filepath.Join(cluster.Root, "test", "e2e", "testdata", "charts", name)
}

// paste runs one block in a new shell and checks its exit code.
func (p *runbookPass) paste(t *testing.T, b testcluster.RunbookBlock, wantExit int) string {
	t.Helper()
	out, code, err := p.shell.Run(b)
	p.steps = append(p.steps, testcluster.Step{Block: b, Out: out, Code: code})
	if err != nil || code != wantExit {
		t.Fatalf("%s:%d (%s %s): exit %d, want %d (%v)\n--- output:\n%s", testcluster.RunbookPath, b.Line, b.Section, b.ID, code, wantExit, err, out)
	}
	if wantExit != 0 && b.Exit == 0 && !strings.Contains(out, "STOP: ") {
		t.Fatalf("%s:%d (%s): a refusal must say STOP and what to do:\n%s", testcluster.RunbookPath, b.Line, b.ID, out)
	}
	return out
}

func (p *runbookPass) pasteID(t *testing.T, id string, wantExit int) string {
	t.Helper()
	b, err := p.rb.Block(id)
	if err != nil {
		t.Fatal(err)
	}
	return p.paste(t, b, wantExit)
}

// refused pastes a block that must refuse, and checks that the Secret did not change at all.
func (p *runbookPass) refused(t *testing.T, id, why string) {
	t.Helper()
	before := p.snapshot(t)
	out := p.pasteID(t, id, 1)
	if after := p.snapshot(t); after != before {
		t.Fatalf("block %s (%s) refused but changed the Secret:\nbefore %s\nafter  %s\n%s", id, why, before, after, out)
	}
}

// follow pastes first, then "Where am I?" and the block it names, until Idle.
func (p *runbookPass) follow(t *testing.T, first string) {
	t.Helper()
	steps, err := p.shell.Follow(p.rb, first)
	p.steps = append(p.steps, steps...)
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot is everything about the Secret a refusal must leave as it was: resourceVersion, data (as a digest),
// annotations.
func (p *runbookPass) snapshot(t *testing.T) string {
	t.Helper()
	s, err := cluster.Client.CoreV1().Secrets(p.ns).Get(context.Background(), p.secret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("rv=%s data=%s annotations=%v", s.ResourceVersion, dataDigest(s.Data), s.Annotations)
}

func dataDigest(data map[string][]byte) string {
	names := make([]string, 0, len(data))
	for k := range data {
		names = append(names, k)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, k := range names {
		fmt.Fprintf(h, "%s=%x;", k, data[k])
	}
	return strings.Join(names, ",") + "@" + hex.EncodeToString(h.Sum(nil))[:12]
}

// expectKeyring checks the keyring's data keys, active version and phase.
func (p *runbookPass) expectKeyring(t *testing.T, keys string, active int, phase rotation.Phase) rotation.State {
	t.Helper()
	s, err := cluster.Client.CoreV1().Secrets(p.ns).Get(context.Background(), p.secret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k, err := keyring.Parse(p.ns+"/"+p.secret, s.Data)
	if err != nil {
		t.Fatalf("invalid keyring: %v", err)
	}
	st, err := rotation.ParseState(s.Annotations)
	if err != nil {
		t.Fatalf("the state the blocks wrote does not parse: %v", err)
	}
	if got := keyring.DataKeys(s.Data); got != keys || k.Active != active || st.Phase != phase {
		t.Fatalf("keyring %s active v%d phase %s, want %s active v%d phase %s", got, k.Active, st.Phase, keys, active, phase)
	}
	if s.Annotations[rotation.AnnoLease] != "" && (phase == rotation.Idle || phase == rotation.Waiting) {
		t.Fatalf("a lock was left behind in phase %s: %s", phase, s.Annotations[rotation.AnnoLease])
	}
	return st
}

// plugin runs helm rotate-key in the operator's environment (for checks between blocks).
func (p *runbookPass) plugin(t *testing.T, wantExit int, args ...string) string {
	t.Helper()
	out, err := p.h.Run(context.Background(), append([]string{"-n", p.ns, "rotate-key"}, append(args, "--secret", p.secret)...)...)
	if code := exitCode(err); code != wantExit {
		t.Fatalf("helm rotate-key %s: exit %d, want %d\n%s", strings.Join(args, " "), code, wantExit, out)
	}
	return out
}

func (p *runbookPass) noKeyInOutputs(t *testing.T) {
	t.Helper()
	for _, name := range []string{p.secret, p.release + "-requests-proxy-admin"} {
		s, err := cluster.Client.CoreV1().Secrets(p.ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			continue
		}
		for k, v := range s.Data {
			if k == "active" {
				continue
			}
			for _, st := range p.steps {
				if strings.Contains(st.Out, string(v)) {
					t.Fatalf("the bytes of %s/%s appear in the output of block %s (line %d)", name, k, st.Block.ID, st.Block.Line)
				}
			}
		}
	}
}

// sectionBlocks are the blocks of a section (by heading prefix) in order, without the skipped ones.
func (p *runbookPass) sectionBlocks(prefix string) []testcluster.RunbookBlock {
	var out []testcluster.RunbookBlock
	for _, b := range p.rb.Blocks {
		if strings.HasPrefix(b.Section, prefix) && b.Skip == "" {
			out = append(out, b)
		}
	}
	return out
}

func (p *runbookPass) preparation(t *testing.T) {
	if p.style == "" { // layout (b): the TTL is not at tokenTtlSeconds, and the layout block says what to set
		for _, b := range p.sectionBlocks("Which layout") {
			out := p.paste(t, b, 1)
			if !strings.Contains(out, "TTL_PATH") || !strings.Contains(out, "requestsProxy.tokenTtlSeconds") {
				t.Fatalf("without TTL_PATH the layout block must stop and name the candidate path:\n%s", out)
			}
		}
		p.refused(t, "B1", "no TTL known")
		if err := p.shell.Fill("TTL_PATH", "requestsProxy.tokenTtlSeconds"); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range p.sectionBlocks("Which layout") {
		out := p.paste(t, b, 0)
		if !strings.Contains(out, "keyring Secret:  "+p.ns+"/"+p.secret) || !strings.Contains(out, "layout OK") {
			t.Fatalf("the layout block found the wrong keyring (want %s):\n%s", p.secret, out)
		}
	}
	p.pasteID(t, "WHERE", 0)
}

// partA: the plugin's path, block by block in the text's order; the rehearsal's wait is block B4.
func partA(t *testing.T, p *runbookPass) {
	p.preparation(t)
	p.helmRunning(t)
	for _, b := range p.sectionBlocks("Part A") {
		if b.ID == "A5" {
			p.keyDeletedAndRestored(t, "key.v1", 0)
			p.pasteID(t, "B4", 0)
		}
		p.paste(t, b, b.Exit)
	}
	p.expectKeyring(t, "active,key.v2", 2, rotation.Idle)
	p.pasteID(t, "WHERE", 0)
	for _, b := range p.sectionBlocks("Exposure notes") {
		if b.ID == "PRUNE" { // CHART is what the release is deployed from: the block asks for it first
			if out := p.paste(t, b, 1); !strings.Contains(out, "CHART is not set") {
				t.Fatalf("PRUNE without CHART must stop and ask for it:\n%s", out)
			}
			p.shell.Env = append(p.shell.Env, "CHART="+exampleChart())
		}
		if out := p.paste(t, b, 0); !strings.Contains(out, "sh.helm.release.v1."+p.release) {
			t.Fatalf("the exposure notes must list the release records:\n%s", out)
		}
	}
	if records := releaseKeyrings(t, p.ns, p.release, p.secret); len(records) != 1 || records[0] != "active,key.v2" {
		t.Fatalf("after PRUNE the release records must be one, holding only the live keyring: %v", records)
	}
	if where := p.pasteID(t, "WHERE", 0); strings.Contains(where, "PRUNE") {
		t.Fatalf("after PRUNE Where am I? must not ask for it again:\n%s", where)
	}
	// The only version deleted by hand (round 17): with no versioned key left the naming comes from Helm's record, so
	// REPAIR finds key.v2 there (it looked for v2 and found nothing) and restores its bytes.
	before := p.keyringDigest(t)
	p.handEdit(t, `{"data":{"key.v2":null}}`)
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "v2, which live tokens were signed with") || !strings.Contains(where, "next:    block REPAIR") {
		t.Fatalf("Where am I? must send to REPAIR when the only version is gone:\n%s", where)
	}
	p.restoreFromRecord(t, "v2", 0)
	restart(t, p)
	if after := p.keyringDigest(t); after != before {
		t.Fatalf("REPAIR must restore key.v2's bytes:\nbefore %s\nafter  %s", before, after)
	}
}

// helmRunning (round 21): while a helm upgrade runs (Part A's hook path), its revision is pending-upgrade and its
// hook Jobs move the rotation on; Where am I? called it stuck and named a block by the half-way phase. A fresh
// pending revision now reads as running, and the next step is to wait. Emulated with a record Secret carrying only
// Helm's labels (what Where am I? reads), deleted at once.
func (p *runbookPass) helmRunning(t *testing.T) {
	t.Helper()
	done := p.pendingUpgrade(t)
	where := p.pasteID(t, "WHERE", 0)
	// Round 22: a lost key comes first — tokens are rejected now, and REPAIR works while helm runs. ('active' names
	// a v2 that is not there: on a keyring never rotated, the version 'active' names is the one needed.)
	p.handEdit(t, `{"data":{"active":"djI="}}`)
	lost := p.pasteID(t, "WHERE", 0)
	p.handEdit(t, `{"data":{"active":"djE="}}`)
	done()
	if !strings.Contains(where, "a helm upgrade is most likely running now") || !strings.Contains(where, "next:    wait until that helm upgrade has ended") || strings.Contains(where, "is stuck") {
		t.Fatalf("Where am I? must read a fresh pending-upgrade as a helm still running, and say to wait:\n%s", where)
	}
	if !strings.Contains(lost, "next:    block REPAIR") {
		t.Fatalf("a lost key must come before waiting for a running helm:\n%s", lost)
	}
}

// pendingUpgrade emulates a helm upgrade of the release that is running (or was killed) for Where am I?: a record
// Secret carrying only Helm's labels, pending-upgrade. The returned function deletes it.
func (p *runbookPass) pendingUpgrade(t *testing.T) func() { return p.pendingHookUpgrade(t, "") }

// pendingHookUpgrade is pendingUpgrade with a whole record whose values carry the plugin's run token (none: "").
func (p *runbookPass) pendingHookUpgrade(t *testing.T, token string) func() {
	t.Helper()
	ctx := context.Background()
	rec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sh.helm.release.v1." + p.release + ".v99", Namespace: p.ns,
		Labels: map[string]string{"owner": "helm", "name": p.release, "status": "pending-upgrade", "version": "99"}}, Type: "helm.sh/release.v1"}
	if token != "" {
		rec = actiontest.ReleaseDescribed(p.release, 99, "pending-upgrade", "Preparing upgrade", map[string]any{"rotate-key": map[string]any{"rotation": map[string]any{"run": token}}})
		rec.Namespace, rec.Type = p.ns, "helm.sh/release.v1"
	}
	if _, err := cluster.Client.CoreV1().Secrets(p.ns).Create(ctx, rec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := cluster.Client.CoreV1().Secrets(p.ns).Delete(ctx, rec.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// keyringDigest is the keyring's data keys and a digest of their bytes.
func (p *runbookPass) keyringDigest(t *testing.T) string {
	t.Helper()
	s, err := cluster.Client.CoreV1().Secrets(p.ns).Get(context.Background(), p.secret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return dataDigest(s.Data)
}

// keyDeletedAndRestored: a needed key deleted by hand — round 20's blocker: the outgoing key of a rotation after its
// promotion (round 20: while it waits for its TTL); round 21's: the active key after an abort before the promotion. REPAIR printed a helm rollback to a record from before the promotion, which also set 'active' back: the
// chart's guard refused it on Helm 3 (release left pending-rollback) and Helm 4's server-side apply conflicted on
// .data.active. REPAIR now puts the bytes back itself, moving nothing else, and writes no Helm revision.
func (p *runbookPass) keyDeletedAndRestored(t *testing.T, outgoing string, record int) {
	t.Helper()
	before := p.keyringDigest(t)
	p.handEdit(t, fmt.Sprintf(`{"data":{%q:null}}`, outgoing))
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "is GONE") || !strings.Contains(where, "next:    block REPAIR") {
		t.Fatalf("Where am I? must lead with the lost outgoing key:\n%s", where)
	}
	p.restoreFromRecord(t, strings.TrimPrefix(outgoing, "key."), record)
	if after := p.keyringDigest(t); after != before {
		t.Fatalf("REPAIR must restore %s's bytes and change nothing else:\nbefore %s\nafter  %s", outgoing, before, after)
	}
	if where := p.pasteID(t, "WHERE", 0); strings.Contains(where, "is GONE") || !strings.Contains(where, "next:    block RESTART") {
		t.Fatalf("after the restore the consumers must restart first:\n%s", where)
	}
	p.refused(t, "B5", "a retirement before the restart the repair needs")
	restart(t, p)
}

// partBFollowed: Part B by hand, each block found by "Where am I?" in a new shell after the one before.
func partBFollowed(t *testing.T, p *runbookPass) {
	var admin string
	if p.style == "" {
		admin = otherSecretDigest(t, p.ns, p.release+"-requests-proxy-admin")
	}
	traffic := startTraffic(context.Background(), t, p.ns, p.secret, p.signer, p.verifier)
	p.preparation(t)
	p.follow(t, "B1")
	st := p.expectKeyring(t, "active,"+p.style+"v2", 2, rotation.Idle)
	p.pasteID(t, "B6", 0)
	assertNoTokenRejected(t, "runbook part B, layout "+p.style+"vN", traffic.Stop(), "v1", "v2")
	if p.cron {
		p.cronJobsRunning(t)
	}
	// The plugin reads the manual rotation's state: green right after the finish, the right dates.
	p.plugin(t, 0, "check", p.release)
	if out := p.plugin(t, 0, "remind", p.release, "--ics", "-"); !strings.Contains(out, st.NextRotationDue.UTC().Format("20060102T150405Z")) {
		t.Fatalf("remind after the finish must give the next due date %s:\n%s", st.NextRotationDue, out)
	}
	if st.NextRotationDue.Before(st.RetireAfter) || st.TTLUsed.Seconds() != 60 {
		t.Fatalf("state after the manual finish: next due %s, retire-after %s, ttl used %s", st.NextRotationDue, st.RetireAfter, st.TTLUsed)
	}
	if admin != "" {
		if now := otherSecretDigest(t, p.ns, p.release+"-requests-proxy-admin"); now != admin {
			t.Fatalf("the unrelated Secret changed: %s -> %s", admin, now)
		}
	}
}

func otherSecretDigest(t *testing.T, ns, name string) string {
	t.Helper()
	s, err := cluster.Client.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("rv=%s %s %v", s.ResourceVersion, dataDigest(s.Data), s.Annotations)
}

// singleKey: the layout block stops and names the migration; no block changes anything.
func singleKey(t *testing.T, p *runbookPass) {
	for _, b := range p.sectionBlocks("Which layout") {
		before := p.snapshot(t)
		out := p.paste(t, b, 1)
		if !strings.Contains(out, "docs/MIGRATIONS.md") || p.snapshot(t) != before {
			t.Fatalf("a single-key layout must stop and point to docs/MIGRATIONS.md, changing nothing:\n%s", out)
		}
	}
	p.refused(t, "WHERE", "single key")
	p.refused(t, "B1", "single key")
	p.refused(t, "EMERGENCY-B", "single key")
}

// outOfOrder: each mutating block pasted when it is not its turn refuses and changes nothing; then both aborts,
// and the emergency by hand while the rotation waits for its TTL.
func outOfOrder(t *testing.T, p *runbookPass) {
	p.preparation(t)
	p.refused(t, "B5", "retire with nothing to retire")
	p.refused(t, "B2", "roll out with nothing to roll out")
	p.pasteID(t, "B1", 0)
	// Round 24: a helm upgrade pending mid-rotation (A2 killed on the hook path): Where am I? said only "wait" for 15
	// minutes, though the rotation can carry on at once with --local or by hand if the operator knows it was killed.
	done := p.pendingUpgrade(t)
	where := p.pasteID(t, "WHERE", 0)
	done()
	if !strings.Contains(where, "next:    wait until that helm upgrade has ended") || !strings.Contains(where, "only if you know it was killed") || !strings.Contains(where, "--local, or by hand: block B2") {
		t.Fatalf("Where am I? must say to wait, and how to carry on if the helm was killed:\n%s", where)
	}
	// Round 25: the plugin's own hook-path revision whose helm is gone (its run token names this machine, and no
	// process carries it): not "most likely running" for 15 minutes, but cleared by the plugin's command (no
	// --local). The same token from another machine, before its time: running.
	host, _ := os.Hostname()
	pidNS, _ := os.Readlink("/proc/self/ns/pid")
	host += "~" + strings.Trim(pidNS, "pid:[]") // the machine as the plugin names it
	until := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	done = p.pendingHookUpgrade(t, "r-0badf00d rev 99 on "+host+" until "+until)
	dead := p.pasteID(t, "WHERE", 0)
	done()
	done = p.pendingHookUpgrade(t, "r-0badf00d rev 99 on another-machine until "+until)
	live := p.pasteID(t, "WHERE", 0)
	done()
	// On this machine, a process that carries the token (as the helm's --set-string argument does) is that helm.
	helm := exec.Command("bash", "-c", "sleep 120; true", "r-0badf00d") // two commands: bash stays, its argv with it
	if err := helm.Start(); err != nil {
		t.Fatal(err)
	}
	done = p.pendingHookUpgrade(t, "r-0badf00d rev 99 on "+host+" until "+until)
	here := p.pasteID(t, "WHERE", 0)
	done()
	_ = helm.Process.Kill()
	_ = helm.Wait()
	if !strings.Contains(here, "its helm is running now on this machine") {
		t.Fatalf("Where am I? must see the hook-path helm running on this machine:\n%s", here)
	}
	if !strings.Contains(dead, "whose helm no longer runs") || strings.Contains(dead, "most likely running") || !strings.Contains(dead, "rotate-key "+p.release+" --secret "+p.secret+" --yes, or by hand: block B2") {
		t.Fatalf("Where am I? must name the plugin (without --local) for its own dead hook-path revision:\n%s", dead)
	}
	if !strings.Contains(live, "started on another machine") || !strings.Contains(live, "whose helm may still run until the token's time") || !strings.Contains(live, "next:    wait until that helm upgrade has ended") {
		t.Fatalf("Where am I? must wait for a hook-path helm that may still run on another machine:\n%s", live)
	}
	p.refused(t, "B1", "the add block twice")
	p.refused(t, "B3", "promote before the rollout")
	p.refused(t, "B5", "retire during the add")
	p.refused(t, "ABORT-AFTER", "abort-after before the promotion")
	// 'active' moved to the new key before the promotion, repaired, then the new key deleted (the round-14
	// reviewer's dead end): v2 signed tokens until the restart, so it is needed — and ABORT-BEFORE refused — until
	// repaired-until; after that it is a new key that is gone, and ABORT-BEFORE ends the rotation.
	ctx := context.Background()
	p.handEdit(t, `{"data":{"active":"djI="}}`)
	p.pasteID(t, "REPAIR", 0)
	restart(t, p)
	p.handEdit(t, `{"data":{"key.v2":null}}`)
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "WARNING: v2, which live tokens were signed with") {
		t.Fatalf("Where am I? must say the new key, which signed while it was active, is lost:\n%s", where)
	}
	p.refused(t, "ABORT-BEFORE", "ending a rotation whose new key signed tokens that still live")
	s, err := cluster.Client.CoreV1().Secrets(p.ns).Get(ctx, p.secret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sleepPast(t, s.Annotations[rotation.Prefix+"repaired-until"])
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "next:    block ABORT-BEFORE") {
		t.Fatalf("once no token needs v2, Where am I? must send to ABORT-BEFORE:\n%s", where)
	}
	if out := p.pasteID(t, "ABORT-BEFORE", 0); !strings.Contains(out, "v2 was already gone") {
		t.Fatalf("ABORT-BEFORE must end the rotation:\n%s", out)
	}
	p.expectKeyring(t, "active,key.v1", 1, rotation.Idle)
	// Round 24: a rotation stopped before its promotion retired nothing, so no Helm record holds a key the keyring
	// lost by it: no PRUNE note.
	if where := p.pasteID(t, "WHERE", 0); strings.Contains(where, "PRUNE") || !strings.Contains(where, "was aborted") {
		t.Fatalf("after ABORT-BEFORE Where am I? must not send to PRUNE:\n%s", where)
	}
	// Round 21: then the active key deleted by hand. With no promoted-at in the state every block, REPAIR too, said
	// "the keyring's data and its rotation state disagree: escalate"; v1 stayed active, so it is needed and restored.
	p.keyDeletedAndRestored(t, "key.v1", 0)
	// A bare pod that reads the keyring: no block restarts it, so B3 must not promote while it runs with old keys.
	// It tolerates every taint: on a loaded machine a kwok node can miss heartbeats, and the node lifecycle
	// controller then evicts a bare pod at once (a CI run on 2 busy cores lost it, and B3 rightly promoted).
	stray := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "stray-verifier", Namespace: p.ns}, Spec: corev1.PodSpec{
		Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
		Containers:  []corev1.Container{{Name: "v", Image: "verifier", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: p.secret}}}}}}}}
	if _, err := cluster.Client.CoreV1().Pods(p.ns).Create(context.Background(), stray, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p.pasteID(t, "B1", 0)
	p.pasteID(t, "B2", 0)
	p.refused(t, "B2", "the rollout twice")
	// The eighth attack on the traffic instrument: a verifier that mounts only the items key.v1 and active cannot
	// read v3, and rejects its tokens once it is promoted: B3 refuses while one reads the keyring that way.
	labels := map[string]string{"app": "pinned-verifier"}
	pinned := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "pinned-verifier", Namespace: p.ns}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1),
		Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}, Containers: []corev1.Container{{Name: "v", Image: "verifier"}},
			Volumes: []corev1.Volume{{Name: "keys", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: p.secret,
				Items: []corev1.KeyToPath{{Key: "key.v1", Path: "key.v1"}, {Key: "active", Path: "active"}}}}}}}}}}
	if _, err := cluster.Client.AppsV1().Deployments(p.ns).Create(ctx, pinned, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := p.snapshot(t)
	if out := p.pasteID(t, "B3", 1); !strings.Contains(out, "deployment/pinned-verifier read the keyring only through the data keys they name") || p.snapshot(t) != before {
		t.Fatalf("B3 must refuse while a consumer cannot read the new version, and change nothing:\n%s", out)
	}
	if err := cluster.Client.AppsV1().Deployments(p.ns).Delete(ctx, pinned.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	before = p.snapshot(t)
	if out := p.pasteID(t, "B3", 1); !strings.Contains(out, "stray-verifier") || p.snapshot(t) != before {
		t.Fatalf("B3 must refuse, naming the pod no block restarts, and change nothing:\n%s", out)
	}
	if err := cluster.Client.CoreV1().Pods(p.ns).Delete(context.Background(), stray.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, p.ns, stray.Name)
	p.pasteID(t, "B3", 0)
	p.refused(t, "B3", "promote twice")
	p.refused(t, "ABORT-BEFORE", "abort-before after the promotion")
	p.pasteID(t, "B2", 0)
	p.expectKeyring(t, "active,key.v1,key.v3", 3, rotation.Waiting) // v2 was removed by the abort: never reused
	p.refused(t, "B5", "retire before retire-after")
	p.refused(t, "B1", "add while waiting")
	p.pasteID(t, "ABORT-AFTER", 0)
	// Round 24: the aborted v3 (added by hand: in no Helm record) deleted in Reverted, no backup. REPAIR leaves it
	// behind as the outgoing version, and Where am I? named the plugin, which refused ("names v3 as the new version,
	// which is not in the keyring"). The plugin now carries the reverted rotation on, as the blocks do.
	p.handEdit(t, `{"data":{"key.v3":null}}`)
	if out := p.pasteID(t, "REPAIR", 0); !strings.Contains(out, "the rotation carries on without it") {
		t.Fatalf("REPAIR must find no record of v3 and say the rotation carries on:\n%s", out)
	}
	restart(t, p)
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "v3, the outgoing version, is gone") || !strings.Contains(where, "rotate-key "+p.release) {
		t.Fatalf("Where am I? must carry the reverted rotation on, naming the plugin:\n%s", where)
	}
	p.plugin(t, 3, "run", p.release, "--yes", "--local") // the rollout after the revert, then the TTL wait
	st := p.expectKeyring(t, "active,key.v1", 1, rotation.Waiting)
	if st.From != 3 || st.To != 1 {
		t.Fatalf("after the abort v3 must wait to be retired: %+v", st)
	}
	p.plugin(t, 3, "run", p.release, "--yes", "--local")
	p.refused(t, "ABORT-AFTER", "abort the abort")
	p.refused(t, "EMERGENCY-B", "an emergency without LEAK_REASON")
	p.shell.Env = append(p.shell.Env, "LEAK_REASON=INC-7: keyring Secret pasted into a ticket")
	p.pasteID(t, "EMERGENCY-B", 0)
	p.refused(t, "ABORT-BEFORE", "stop an emergency before its promotion (the leaked keys stay active)")
	p.pasteID(t, "B2", 0)
	// The leaked active version deleted by hand before the promotion (round 16: every block refused, and REPAIR
	// pointed 'active' at the absent version): nothing is lost, the blocks carry the emergency on.
	p.handEdit(t, `{"data":{"key.v1":null}}`)
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "v1, the version emergency rotation") || !strings.Contains(where, "by hand: block B3") {
		t.Fatalf("Where am I? must carry the emergency on once its leaked active version is gone:\n%s", where)
	}
	p.refused(t, "REPAIR", "a repair that would point 'active' at the deleted leaked version")
	p.pasteID(t, "B3", 0)
	p.refused(t, "ABORT-AFTER", "undo an emergency after its promotion (a leaked key active again)")
	p.follow(t, "B2")
	st = p.expectKeyring(t, "active,key.v4", 4, rotation.Idle)
	if st.Emergency == "" {
		t.Fatal("the emergency was not recorded")
	}
	p.refused(t, "EMERGENCY-B", "the same emergency twice")
	// A change outside any rotation (what a helm rollback of a chart without the library does): a retired version
	// back and active. Where am I? warns, and the next rotation takes a version number never used.
	patch := fmt.Sprintf(`{"data":{"key.v2":%q,"active":%q}}`, base64.StdEncoding.EncodeToString(make32()), base64.StdEncoding.EncodeToString([]byte("v2")))
	p.handEdit(t, patch)
	// 'active' points at the leaked version again: that comes first (REPAIR, RESTART); then the leaked version goes
	// at once (EXTRA after an emergency does not wait for its tokens to expire).
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "finished with v4 active, but 'active' names v2") || !strings.Contains(where, "next:    block REPAIR") {
		t.Fatalf("Where am I? must lead with the moved active key:\n%s", where)
	}
	p.refused(t, "B1", "a rotation while 'active' is moved")
	p.refused(t, "EXTRA", "removing a version while 'active' is moved")
	p.pasteID(t, "REPAIR", 0)
	p.refused(t, "EXTRA", "removing a version before the restart the repair needs")
	restart(t, p)
	// Signers that started while 'active' named v2 signed with it, but v2 leaked: its tokens stop now, like every
	// token of a leaked version (round 16 found a leaked version trusted a TTL longer; round 14 had asked to wait).
	p.extraRemoves(t, "leaked versions are back", "key.v2")
	p.expectKeyring(t, "active,key.v4", 4, rotation.Idle)
	restart(t, p)
	if out := p.pasteID(t, "B1", 0); !strings.Contains(out, "added key.v5") {
		t.Fatalf("B1 must not reuse a version number:\n%s", out)
	}
}

// handEdit merge-patches the keyring Secret as an operator's kubectl edit (or a rollback) would, outside any block.
func (p *runbookPass) handEdit(t *testing.T, patch string) {
	t.Helper()
	if _, err := cluster.Client.CoreV1().Secrets(p.ns).Patch(context.Background(), p.secret, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// sleepPast waits until 2 s after the RFC 3339 time at (a time a block printed or recorded).
func sleepPast(t *testing.T, at string) {
	t.Helper()
	until, err := time.Parse(time.RFC3339, at)
	if err != nil {
		t.Fatalf("%q: %v", at, err)
	}
	time.Sleep(time.Until(until) + 2*time.Second)
}

// make32 is 32 random bytes (a stand-in for a key a rollback brought back).
func make32() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// waitGone waits until a pod is deleted.
func waitGone(t *testing.T, ns, name string) {
	t.Helper()
	for i := 0; i < 300; i++ {
		if _, err := cluster.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("pod %s/%s was not deleted", ns, name)
}

// switchPaths: a rotation started by hand, carried on with the plugin, retired by hand, finished by the plugin.
func switchPaths(t *testing.T, p *runbookPass) {
	p.preparation(t)
	p.pasteID(t, "B1", 0)
	if paused := p.cronJobs(t); paused != "requests-proxy-rotate-key suspend=true by=runbook" {
		t.Fatalf("B1 must pause the chart's CronJob: %q", paused)
	}
	for _, b := range p.sectionBlocks("Part A") {
		if strings.Contains(b.Code, `rotate-key "$RELEASE" --secret "$SECRET" --yes`) && b.Exit == 3 {
			p.paste(t, b, 3) // A2: the plugin rolls out, promotes, rolls out: Waiting
			break
		}
	}
	p.expectKeyring(t, "active,key.v1,key.v2", 2, rotation.Waiting)
	if out := p.pasteID(t, "B4-CALENDAR", 0); !strings.Contains(out, "retire v1 of "+p.ns+"/"+p.secret+" after ") {
		t.Fatalf("the calendar line must name the retirement:\n%s", out)
	}
	p.pasteID(t, "B4", 0)
	p.pasteID(t, "B5", 0)
	p.pasteID(t, "A5", 0)
	p.expectKeyring(t, "active,key.v2", 2, rotation.Idle)
	p.plugin(t, 0, "check", p.release)
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "paste block B6 to resume the CronJob") {
		t.Fatalf("Where am I? must say the CronJob is still paused after the plugin finished:\n%s", where)
	}
	p.pasteID(t, "B6", 0)
	p.cronJobsRunning(t)
	p.refused(t, "A5", "A5 in Idle: the plugin command would start a new rotation without A2's checks (round 18a)")
}

// cronJobs describes the release's rotation CronJobs: name, suspend, and who suspended it.
func (p *runbookPass) cronJobs(t *testing.T) string {
	t.Helper()
	list, err := cluster.Client.BatchV1().CronJobs(p.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=rotate-key"})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, cj := range list.Items {
		out = append(out, fmt.Sprintf("%s suspend=%v by=%s", cj.Name, cj.Spec.Suspend != nil && *cj.Spec.Suspend, cj.Annotations[rotation.Prefix+"suspended-by"]))
	}
	return strings.Join(out, "; ")
}

func (p *runbookPass) cronJobsRunning(t *testing.T) {
	t.Helper()
	if got := p.cronJobs(t); got != "requests-proxy-rotate-key suspend=false by=" {
		t.Fatalf("after the rotation the CronJob must run again: %q", got)
	}
}

// emergencyPlugin: the plugin's emergency in the Waiting phase of a rotation done by hand on the plain chart.
func emergencyPlugin(t *testing.T, p *runbookPass) {
	p.preparation(t)
	for _, id := range []string{"B1", "B2", "B3", "B2"} {
		p.pasteID(t, id, 0)
	}
	p.expectKeyring(t, "active,v1,v2", 2, rotation.Waiting)
	p.refused(t, "EMERGENCY-A", "an emergency without LEAK_REASON")
	p.shell.Env = append(p.shell.Env, "LEAK_REASON=INC-9: laptop with kubeconfig stolen")
	out := p.pasteID(t, "EMERGENCY-A", 0)
	if !strings.Contains(out, "REJECTED") {
		t.Fatalf("the plugin's emergency must state its cost:\n%s", out)
	}
	p.expectKeyring(t, "active,v3", 3, rotation.Idle)
	p.pasteID(t, "EMERGENCY-A", 0) // the same command pasted again: nothing more happens
	p.expectKeyring(t, "active,v3", 3, rotation.Idle)
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "may still hold the leaked keys: block PRUNE") || !strings.Contains(where, "next:    block PRUNE") {
		t.Fatalf("after an emergency Where am I? must remind of the leaked keys in Helm's release records:\n%s", where)
	}
	// Round 29: a stuck revision left by a dead hook-path helm: PRUNE refuses until it is cleared, so Where am I?
	// names that first (it named PRUNE, and PRUNE sent back to Where am I?).
	host, _ := os.Hostname()
	pidNS, _ := os.Readlink("/proc/self/ns/pid")
	done := p.pendingHookUpgrade(t, "r-0badf00d rev 99 on "+host+"~"+strings.Trim(pidNS, "pid:[]")+" until "+time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	stuck := p.pasteID(t, "WHERE", 0)
	done()
	if !strings.Contains(stuck, "next:    clear Helm's stuck revision: helm -n "+p.ns+" rotate-key retire") || strings.Contains(stuck, "next:    block PRUNE") {
		t.Fatalf("with a stuck revision Where am I? must name its clearing before PRUNE:\n%s", stuck)
	}

	// The forbidden helm rollback on Helm 3 (a chart without the library): an upgrade renders v3, a rollback to the
	// install's revision then deletes v3 and makes v1 active again — and Helm reports success. Where am I? must lead
	// with the lost key and send the operator to roll forward, not to a new rotation; B1 refuses meanwhile.
	ctx := context.Background()
	if out, err := p.h.Run(ctx, "-n", p.ns, "upgrade", p.release, runbookChart("runbook-plain"), "--reuse-values"); err != nil {
		t.Fatalf("upgrade: %v\n%s", err, out)
	}
	if out, err := p.h.Run(ctx, "-n", p.ns, "rollback", p.release, "1"); err != nil {
		t.Fatalf("Helm 3 rollback: %v\n%s", err, out)
	}
	where := p.pasteID(t, "WHERE", 0)
	if !strings.Contains(where, "WARNING: v3, which live tokens were signed with") || !strings.Contains(where, "is GONE") || !strings.Contains(where, "next:    block REPAIR") {
		t.Fatalf("Where am I? after a rollback that removed the active key must lead with it:\n%s", where)
	}
	p.refused(t, "B1", "a rotation while the active key is lost")
	p.refused(t, "RESTART", "a restart before the lost key is back")
	p.restoreFromRecord(t, "v3", 2) // the upgrade's record is the one that rendered v3
	p.expectKeyring(t, "active,v1,v3", 3, rotation.Idle)
	if where := p.pasteID(t, "WHERE", 0); strings.Contains(where, "is GONE") || !strings.Contains(where, "next:    block RESTART") {
		t.Fatalf("after the restore the keyring has v3 again, and the consumers must restart first:\n%s", where)
	}
	p.refused(t, "B1", "a rotation before the restart the repair needs")
	// Pods that started while v3 was gone hold the wrong keyring: RESTART replaces every consumer's pods.
	restart(t, p)
	// The rollback also brought back v1, which the emergency retired because it leaked: EXTRA removes it at once
	// (REPAIR moves nothing but what is lost and 'active').
	p.extraRemoves(t, "leaked versions are back", "v1")
	p.expectKeyring(t, "active,v3", 3, rotation.Idle)
	restart(t, p)

	// A rollback before the promotion that removes the new key (helm history: 1 install v1, 2 upgrade v3, 3 rollback
	// to 1, 4 upgrade v3+v4, 5 rollback to 2): v4 never signed, so the rotation ends (ABORT-BEFORE) and the next one
	// takes a number never used, v5 — v4's bytes still sit in revision 4's record.
	p.pasteID(t, "B1", 0)
	p.expectKeyring(t, "active,v3,v4", 3, rotation.KeyAdded)
	if out, err := p.h.Run(ctx, "-n", p.ns, "upgrade", p.release, runbookChart("runbook-plain"), "--reuse-values"); err != nil {
		t.Fatalf("upgrade: %v\n%s", err, out)
	}
	if out, err := p.h.Run(ctx, "-n", p.ns, "rollback", p.release, "2"); err != nil {
		t.Fatalf("Helm 3 rollback: %v\n%s", err, out)
	}
	p.expectKeyring(t, "active,v3", 3, rotation.KeyAdded)
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "v4, the new version of rotation") || !strings.Contains(where, "next:    block ABORT-BEFORE") {
		t.Fatalf("Where am I? must send a rotation whose new key is gone to ABORT-BEFORE:\n%s", where)
	}
	for _, id := range []string{"B2", "B3", "REPAIR"} {
		p.refused(t, id, "a step of a rotation whose new key is gone")
	}
	if out := p.pasteID(t, "ABORT-BEFORE", 0); !strings.Contains(out, "v4 was already gone") {
		t.Fatalf("ABORT-BEFORE must end the rotation whose new key is gone:\n%s", out)
	}
	p.expectKeyring(t, "active,v3", 3, rotation.Idle)

	// A rollback during a rotation (6 rollback to 1): in RolledOut it removes v3, the ACTIVE key, and makes v1 active;
	// v5 (never rendered) stays. No block may act on the state, and the repair must not point 'active' at the missing
	// key. The newest record that renders v3 is revision 5 (revision 4 renders it too, beside v4's old bytes).
	p.pasteID(t, "B1", 0)
	p.pasteID(t, "B2", 0)
	p.expectKeyring(t, "active,v3,v5", 3, rotation.RolledOut)
	if out, err := p.h.Run(ctx, "-n", p.ns, "rollback", p.release, "1"); err != nil {
		t.Fatalf("Helm 3 rollback: %v\n%s", err, out)
	}
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "WARNING: v3, which live tokens were signed with") || !strings.Contains(where, "next:    block REPAIR") {
		t.Fatalf("Where am I? must lead with the lost active key in the middle of a rotation too:\n%s", where)
	}
	for _, id := range []string{"B3", "B2", "ABORT-BEFORE", "RESTART"} {
		p.refused(t, id, "a step while the active key is lost")
	}
	p.restoreFromRecord(t, "v3", 5)
	p.expectKeyring(t, "active,v1,v3,v5", 3, rotation.RolledOut)
	p.refused(t, "B3", "a promotion before the restart the repair needs")
	restart(t, p)
	// The rollback had also made v1 active, and a signer that started then signed with it (the round-15 reviewer's
	// rejected tokens): RESTART records until when those tokens live, which keeps v1 at least that long.
	var repairedUntil string
	if s, err := cluster.Client.CoreV1().Secrets(p.ns).Get(ctx, p.secret, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if s.Annotations[rotation.Prefix+"repaired-until"] == "" {
		t.Fatalf("after a repair of a lost key that also found 'active' moved, RESTART must record repaired-until: %v", s.Annotations)
	} else {
		repairedUntil = s.Annotations[rotation.Prefix+"repaired-until"]
	}
	// v1, back beside the rotation, verifies tokens and this rotation does not retire it: Where am I? says so.
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "beside this rotation's v3 and v5") {
		t.Fatalf("Where am I? must warn of v1 beside the rotation:\n%s", where)
	}
	p.pasteID(t, "B3", 0)
	before := p.expectKeyring(t, "active,v1,v3,v5", 5, rotation.Promoted)

	// The outgoing v3 deleted by hand after the promotion (round 14: no record rendered v3 AND v5, and REPAIR said
	// "escalate"; round 20: the rollback it then named also set 'active' back and was refused): revision 5 renders v3
	// with its bytes, and REPAIR puts them back alone. 'active' never moved, so retire-after stays. (Before B2, not in
	// the TTL wait: with a 60 s TTL a loaded machine could reach retire-after first, after which v3 is no loss.)
	p.keyDeletedAndRestored(t, "v3", 5)
	if after := p.expectKeyring(t, "active,v1,v3,v5", 5, rotation.Promoted); !after.RetireAfter.Equal(before.RetireAfter) {
		t.Fatalf("a restore that moved no 'active' must leave retire-after: %s, before %s", after.RetireAfter, before.RetireAfter)
	}
	// Round 21: v3 and the active v5 deleted together. Only v3 is in a record: REPAIR restored nothing and called
	// both "only in a backup". It now restores v3, names v5 as the one to bring from a backup, and once the operator
	// has (the test plays the backup), Where am I? sends to RESTART.
	p.lostWithAndWithoutRecord(t, "v3", 5, "v5")
	p.pasteID(t, "B2", 0)
	// Round 32: v1, back beside the rotation, goes during it — EXTRA as soon as no token signed while it was active
	// again can live (repaired-until), not after the rotation's TTL wait. Where am I? leads there on the way.
	p.follow(t, "B4")
	p.expectKeyring(t, "active,v5", 5, rotation.Idle)
	// Round 20: after a normal rotation that followed the emergency, the leaked keys are still in Helm's records.
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "block PRUNE") {
		t.Fatalf("until PRUNE ran, Where am I? must say Helm's records may hold keys the keyring no longer has:\n%s", where)
	}

	// A retired version back too (a rollback of a chart without the library): Where am I? sends to EXTRA, which
	// removes it.
	patch := fmt.Sprintf(`{"data":{"v3":%q}}`, base64.StdEncoding.EncodeToString(make32()))
	p.handEdit(t, patch)
	p.refused(t, "B1", "a rotation while a retired version is back (it would stay trusted through it: round 16)")
	sleepPast(t, repairedUntil)
	p.extraRemoves(t, "retired v3, but it is back in the keyring", "v3")
	p.expectKeyring(t, "active,v5", 5, rotation.Idle)
	restart(t, p)

	// The active key removed by hand, with rollbacks in the history (the round-13 reviewer rolled back to the
	// revision before the last 'Rollback to' line and lost more): no release record renders v5, so REPAIR names no
	// revision at all. With no backup either (round 16: a dead end), a new key is the way on: EMERGENCY-B, then
	// Where am I? to the end, never reusing a version number.
	p.handEdit(t, `{"data":{"v5":null}}`)
	p.refused(t, "EMERGENCY-B", "a new key before REPAIR looked for the lost one")
	if out := p.pasteID(t, "REPAIR", 0); !strings.Contains(out, "No Helm release record of "+p.release) || strings.Contains(out, " rollback "+p.release) ||
		!strings.Contains(out, "paste block EMERGENCY-B") {
		t.Fatalf("REPAIR must not name a revision when no record renders the lost key, and must name the way on:\n%s", out)
	}
	p.emergencyByHand(t, "v5 lost, no backup", "v6")
	p.follow(t, "B2")
	p.expectKeyring(t, "active,v6", 6, rotation.Idle)

	// Round 18: the keyring's whole data deleted by hand after an emergency's promotion — every block stopped at
	// "not a keyring", and EMERGENCY-B refused while the emergency was in progress, though its new key is lost
	// beyond repair (an emergency by hand leaves no Helm record of it). Now Where am I? and REPAIR find the keyring by
	// its state and name EMERGENCY-B, which replaces the emergency in progress.
	p.emergencyByHand(t, "INC-9: v6 leaked", "v7")
	p.pasteID(t, "B2", 0)
	p.pasteID(t, "B3", 0)
	p.expectKeyring(t, "active,v6,v7", 7, rotation.Promoted)
	p.handEdit(t, `{"data":null}`)
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "WARNING: v7, which live tokens were signed with") || !strings.Contains(where, "next:    block REPAIR") {
		t.Fatalf("Where am I? must find the emptied keyring by its state and lead with the lost v7:\n%s", where)
	}
	if out := p.pasteID(t, "REPAIR", 0); !strings.Contains(out, "No Helm release record of "+p.release) || !strings.Contains(out, "LEAK_REASON='v7 lost, no backup'") {
		t.Fatalf("REPAIR must find no record of v7 and name the way on:\n%s", out)
	}
	p.emergencyByHand(t, "v7 lost, no backup", "v8") // it replaces the emergency whose new key is lost
	p.follow(t, "B2")
	p.expectKeyring(t, "active,v8", 8, rotation.Idle)

	// Round 22: the outgoing v8 (added by hand: no Helm record holds it) deleted after the promotion of v9. REPAIR
	// found no record, and then every block refused for ever (only Waiting had a "wait until" way on). It is the
	// outgoing version: its tokens are rejected already, and the rotation carries on without it.
	for _, id := range []string{"B1", "B2", "B3"} {
		p.pasteID(t, id, 0)
	}
	p.expectKeyring(t, "active,v8,v9", 9, rotation.Promoted)
	p.handEdit(t, `{"data":{"v8":null}}`)
	if out := p.pasteID(t, "REPAIR", 0); !strings.Contains(out, "renders v8 beside") || !strings.Contains(out, "the rotation carries on without it") {
		t.Fatalf("REPAIR must find no record of v8 and say the rotation carries on:\n%s", out)
	}
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "v8, the outgoing version, is gone") || !strings.Contains(where, "next:    block RESTART") {
		t.Fatalf("Where am I? must let the rotation carry on without the unrestorable outgoing v8:\n%s", where)
	}
	restart(t, p)
	p.follow(t, "B2")
	p.expectKeyring(t, "active,v9", 9, rotation.Idle)

	// Round 23: the promoted new key v10 (added by hand: in no record) deleted while the rotation waits, no backup.
	// The only way on named was EMERGENCY-B, which also removed v9 — a version live tokens needed, that had not
	// leaked. v9 can sign again: ABORT-AFTER makes it active; then the aborted v10, gone and unrestorable, was left
	// in Reverted as "never promoted: ABORT-BEFORE", which refused (round 23's other blocker). Now it carries on.
	for _, id := range []string{"B1", "B2", "B3", "B2"} {
		p.pasteID(t, id, 0)
	}
	p.expectKeyring(t, "active,v10,v9", 10, rotation.Waiting)
	p.handEdit(t, `{"data":{"v10":null}}`)
	if out := p.pasteID(t, "REPAIR", 0); !strings.Contains(out, "renders v10 beside") || !strings.Contains(out, "paste block ABORT-AFTER") || strings.Contains(out, "EMERGENCY-B") {
		t.Fatalf("REPAIR must find no record of v10 and name ABORT-AFTER, not a new key:\n%s", out)
	}
	if out := p.pasteID(t, "ABORT-AFTER", 0); !strings.Contains(out, "active is v9 again") {
		t.Fatalf("ABORT-AFTER must make v9 active again:\n%s", out)
	}
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "v10, the outgoing version, is gone") || strings.Contains(where, "never promoted") || !strings.Contains(where, "next:    block RESTART") {
		t.Fatalf("Where am I? must carry the reverted rotation on without the lost v10:\n%s", where)
	}
	restart(t, p)
	p.follow(t, "B2")
	p.expectKeyring(t, "active,v9", 9, rotation.Idle)

	// Round 24: after ABORT-AFTER the old key, active again, deleted (added by hand: in no record), no backup —
	// in Reverted, and in Waiting after the abort's rollout. Where am I? and REPAIR named EMERGENCY-B, which would
	// also remove the intact new key whose tokens live. The new key, which every verifier trusts, can sign again:
	// ABORT-AFTER makes it active, and the rotation carries on as after its promotion, without the lost old key.
	p.revertedSignerLost(t, 9, 11, false)
	p.revertedSignerLost(t, 11, 12, true)

	// Purge the retired keys from Helm's records: one record is left, and it holds only today's keyring.
	p.shell.Env = append(p.shell.Env, "CHART="+runbookChart("runbook-plain"))
	p.pasteID(t, "PRUNE", 0)
	records := releaseKeyrings(t, p.ns, p.release, p.secret)
	if len(records) != 1 || records[0] != "active,v12" {
		t.Fatalf("after PRUNE the release records must be one, holding only the live keyring: %v", records)
	}
	if where := p.pasteID(t, "WHERE", 0); strings.Contains(where, "PRUNE") {
		t.Fatalf("after PRUNE Where am I? must not ask for it again:\n%s", where)
	}
}

// revertedSignerLost rotates old -> new by hand, aborts after the promotion (with the abort's rollout when
// rolledOut) and deletes old, the active key again: REPAIR must name ABORT-AFTER, which must make new active again
// with the rotation carried on to its end without old.
func (p *runbookPass) revertedSignerLost(t *testing.T, old, new int, rolledOut bool) {
	t.Helper()
	ids := []string{"B1", "B2", "B3", "ABORT-AFTER"}
	phase := rotation.Reverted
	if rolledOut {
		ids, phase = append(ids, "B2"), rotation.Waiting
	}
	for _, id := range ids {
		p.pasteID(t, id, 0)
	}
	both := []string{"active", fmt.Sprintf("v%d", old), fmt.Sprintf("v%d", new)}
	sort.Strings(both)
	p.expectKeyring(t, strings.Join(both, ","), old, phase)
	p.handEdit(t, fmt.Sprintf(`{"data":{"v%d":null}}`, old))
	if out := p.pasteID(t, "REPAIR", 0); !strings.Contains(out, fmt.Sprintf("renders v%d beside", old)) || !strings.Contains(out, "paste block ABORT-AFTER") || strings.Contains(out, "EMERGENCY-B") {
		t.Fatalf("REPAIR must find no record of v%d and name ABORT-AFTER, not a new key:\n%s", old, out)
	}
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, "block ABORT-AFTER makes v"+strconv.Itoa(new)) || strings.Contains(where, "EMERGENCY-B") {
		t.Fatalf("Where am I? must name ABORT-AFTER, not a new key:\n%s", where)
	}
	if out := p.pasteID(t, "ABORT-AFTER", 0); !strings.Contains(out, fmt.Sprintf("active is v%d again", new)) || !strings.Contains(out, "block RESTART") {
		t.Fatalf("ABORT-AFTER must make v%d active again and name RESTART:\n%s", new, out)
	}
	st := p.expectKeyring(t, fmt.Sprintf("active,v%d", new), new, rotation.Promoted)
	if st.From != old || st.To != new {
		t.Fatalf("the rotation v%d -> v%d must carry on: %+v", old, new, st)
	}
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, fmt.Sprintf("v%d, the outgoing version, is gone", old)) || !strings.Contains(where, "next:    block RESTART") {
		t.Fatalf("Where am I? must carry the rotation on without the lost v%d:\n%s", old, where)
	}
	restart(t, p)
	p.follow(t, "B2")
	p.expectKeyring(t, fmt.Sprintf("active,v%d", new), new, rotation.Idle)
	if where := p.pasteID(t, "WHERE", 0); strings.Contains(where, "was aborted") {
		t.Fatalf("v%d was rotated in: the rotation is not an aborted one:\n%s", new, where)
	}
}

// emergencyByHand exports reason as LEAK_REASON and pastes EMERGENCY-B, which must add version added.
func (p *runbookPass) emergencyByHand(t *testing.T, reason, added string) {
	t.Helper()
	p.shell.Env = append(p.shell.Env, "LEAK_REASON="+reason)
	if out := p.pasteID(t, "EMERGENCY-B", 0); !strings.Contains(out, "added "+added) {
		t.Fatalf("EMERGENCY-B for %q must add %s:\n%s", reason, added, out)
	}
}

// lostWithAndWithoutRecord deletes version restorable (rendered by revision record) and version backedUp (in no
// record) together: REPAIR must restore the first, byte for byte, and name the second as only in a backup; the
// test then puts it back as an operator would from a backup, and RESTART follows.
func (p *runbookPass) lostWithAndWithoutRecord(t *testing.T, restorable string, record int, backedUp string) {
	t.Helper()
	ctx := context.Background()
	s, err := cluster.Client.CoreV1().Secrets(p.ns).Get(ctx, p.secret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before, backup := dataDigest(s.Data), base64.StdEncoding.EncodeToString(s.Data[backedUp])
	p.handEdit(t, fmt.Sprintf(`{"data":{%q:null,%q:null}}`, restorable, backedUp))
	out := p.pasteID(t, "REPAIR", 0)
	if !strings.Contains(out, fmt.Sprintf("restored %s with the bytes of revision %d's release record", restorable, record)) ||
		!strings.Contains(out, "renders "+backedUp+" beside") || !strings.Contains(out, "Once "+backedUp+" is back") {
		t.Fatalf("REPAIR must restore %s from revision %d and name %s as only in a backup:\n%s", restorable, record, backedUp, out)
	}
	// Round 31: once REPAIR found no record of it, Where am I? leads with the backup, not REPAIR again.
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, backedUp+", which live tokens were signed with") || !strings.Contains(where, "next:    REPAIR found no Helm record of "+backedUp+": put it back from a backup") {
		t.Fatalf("Where am I? must still lead with %s, and say REPAIR found no record of it:\n%s", backedUp, where)
	}
	p.handEdit(t, fmt.Sprintf(`{"data":{%q:%q}}`, backedUp, backup)) // from the backup
	if after := p.keyringDigest(t); after != before {
		t.Fatalf("the keyring after the restore and the backup differs:\nbefore %s\nafter  %s", before, after)
	}
	if where := p.pasteID(t, "WHERE", 0); strings.Contains(where, "is GONE") || !strings.Contains(where, "next:    block RESTART") {
		t.Fatalf("with both back the consumers must restart:\n%s", where)
	}
	restart(t, p)
}

// restoreFromRecord pastes REPAIR for the lost version lost and checks that it put the bytes back itself from
// revision want's release record (the newest that renders it beside the live bytes of every version still there;
// 0: any), without a Helm operation: the release's records are the same before and after.
func (p *runbookPass) restoreFromRecord(t *testing.T, lost string, want int) {
	t.Helper()
	records := func() string {
		list, err := cluster.Client.CoreV1().Secrets(p.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "owner=helm,name=" + p.release})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range list.Items {
			out = append(out, s.Name+"@"+s.ResourceVersion)
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	before := records()
	out := p.pasteID(t, "REPAIR", 0)
	m := regexp.MustCompile(`restored (\S+) with the bytes of revision (\d+)'s release record`).FindStringSubmatch(out)
	if m == nil || m[1] != lost || want > 0 && m[2] != strconv.Itoa(want) || strings.Contains(out, "rollback") {
		t.Fatalf("REPAIR must restore %s from revision %d's record itself, naming no rollback:\n%s", lost, want, out)
	}
	if after := records(); after != before {
		t.Fatalf("REPAIR must not touch Helm's release records:\nbefore %s\nafter  %s", before, after)
	}
}

// extraRemoves checks that Where am I? warns with warning and sends to block EXTRA, and that EXTRA then removes the
// data key removed.
func (p *runbookPass) extraRemoves(t *testing.T, warning, removed string) {
	t.Helper()
	if where := p.pasteID(t, "WHERE", 0); !strings.Contains(where, warning) || !strings.Contains(where, "next:    block EXTRA") || !strings.Contains(where, ", now), then block RESTART") {
		t.Fatalf("Where am I? must warn %q and send to EXTRA, which may remove it now:\n%s", warning, where)
	}
	if out := p.pasteID(t, "EXTRA", 0); !strings.Contains(out, "removed "+removed) {
		t.Fatalf("EXTRA must remove %s:\n%s", removed, out)
	}
}

// restart pastes RESTART and checks that every consumer pod from before it was replaced.
func restart(t *testing.T, p *runbookPass) {
	t.Helper()
	before := consumerPods(t, p.ns)
	if out := p.pasteID(t, "RESTART", 0); !strings.Contains(out, "every consumer restarted") {
		t.Fatalf("RESTART:\n%s", out)
	}
	for name := range before {
		waitGone(t, p.ns, name)
	}
	if where := p.pasteID(t, "WHERE", 0); strings.Contains(where, "next:    block RESTART") || strings.Contains(where, "repaired:") {
		t.Fatalf("after RESTART Where am I? must not ask for it again:\n%s", where)
	}
}

// releaseKeyrings are, per Helm release record of the release, the data keys its manifest renders into the keyring
// Secret (read from the records themselves: base64, gzip, JSON).
func releaseKeyrings(t *testing.T, ns, release, secret string) []string {
	t.Helper()
	list, err := cluster.Client.CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "owner=helm,name=" + release})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range list.Items {
		raw, err := base64.StdEncoding.DecodeString(string(s.Data["release"]))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		var rel struct {
			Manifest string `json:"manifest"`
		}
		if err := json.NewDecoder(zr).Decode(&rel); err != nil {
			t.Fatal(err)
		}
		keys := "(no keyring)"
		for _, doc := range strings.Split(rel.Manifest, "\n---") {
			var obj struct {
				Kind     string            `json:"kind"`
				Metadata metav1.ObjectMeta `json:"metadata"`
				Data     map[string][]byte `json:"data"`
			}
			if yaml.Unmarshal([]byte(doc), &obj) == nil && obj.Kind == "Secret" && obj.Metadata.Name == secret {
				keys = keyring.DataKeys(obj.Data)
			}
		}
		out = append(out, keys)
	}
	return out
}

// consumerPods are the names of the pods in ns that are not rotate-key's own.
func consumerPods(t *testing.T, ns string) map[string]bool {
	t.Helper()
	pods, err := cluster.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/component!=rotate-key"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, p := range pods.Items {
		out[p.Name] = true
	}
	return out
}
