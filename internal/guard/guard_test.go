package guard

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

var (
	now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	k1  = "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5oQ7sU9wY1aC3eG5iK7mO9qS1uW3y" // test keys, 64 alphanumerics
	k2  = "Zy9Xw7Vu5Ts3Rq1Po9Nm7Lk5Ji3Hg1Fe9Dc7Ba5Zy3Xw1Vu9Ts7Rq5Po3Nm1Lk9J"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func secretDoc(name string, keep bool, data map[string]string) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Secret\nmetadata:\n  name: " + name + "\n")
	if keep {
		b.WriteString("  annotations:\n    helm.sh/resource-policy: keep\n")
	}
	b.WriteString("data:\n")
	for k, v := range data {
		b.WriteString("  " + k + ": " + b64(v) + "\n")
	}
	return b.String()
}

const deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  replicas: 2\n"

func live(data map[string]string, annotations map[string]string) *Live {
	l := &Live{Data: map[string][]byte{}, Annotations: annotations}
	for k, v := range data {
		l.Data[k] = []byte(v)
	}
	return l
}

func rules(fs []Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, string(f.Rule))
	}
	return strings.Join(out, ",")
}

func TestCheck(t *testing.T) {
	rotated := map[string]string{"key.v1": k1, "key.v2": k2, "active": "v2"}
	waiting := rotation.State{Phase: rotation.Waiting, RotationID: "r", From: 1, To: 2, PromotedAt: now.Add(-2 * time.Hour), TTLUsed: time.Hour, RetireAfter: now.Add(time.Hour)}
	due := waiting
	due.RetireAfter = now.Add(-time.Hour)
	rolledOut := rotation.State{Phase: rotation.RolledOut, RotationID: "r", From: 1, To: 2}
	onlyV2 := map[string]string{"key.v2": k2, "active": "v2"}
	retired := rotation.State{Phase: rotation.Idle, RotationID: "r", From: 1, To: 2, PromotedAt: now.Add(-3 * time.Hour), RetireAfter: now.Add(-time.Hour), RetiredAt: now.Add(-time.Hour), FinishedAt: now.Add(-time.Hour)}
	waitingV3 := rotation.State{Phase: rotation.Waiting, RotationID: "r2", From: 2, To: 3, PromotedAt: now.Add(-2 * time.Hour), TTLUsed: time.Hour, RetireAfter: now.Add(time.Hour), RetiredUpTo: 1}
	abortedBack := rotation.State{Phase: rotation.Idle, RotationID: "r", From: 3, To: 2, PromotedAt: now.Add(-3 * time.Hour), RetireAfter: now.Add(-time.Hour), RetiredAt: now.Add(-time.Hour), FinishedAt: now.Add(-time.Hour)}
	tests := []struct {
		name   string
		stream string
		live   *Live
		want   string
	}{
		{"first install", secretDoc("keys", true, map[string]string{"key.v1": k1, "active": "v1"}), nil, ""},
		{"unchanged", deployment + "---\n" + secretDoc("keys", true, rotated), live(rotated, nil), ""},
		{"secret skipped (--reset-values)", deployment, live(rotated, nil), "secret-not-rendered"},
		{"another namespace's Secret", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: keys\n  namespace: other\n", live(rotated, nil), "secret-not-rendered"},
		{"keep dropped", secretDoc("keys", false, rotated), live(rotated, nil), "keep-policy-dropped"},
		{"values chart after a rotation", secretDoc("keys", true, map[string]string{"key.v1": k1, "active": "v1"}), live(rotated, nil), "version-dropped,active-changed"},
		{"regenerated (lookup empty)", secretDoc("keys", true, map[string]string{"key.v1": k2, "key.v2": k1, "active": "v2"}), live(rotated, nil), "key-bytes-changed"},
		{"retire before the TTL", secretDoc("keys", true, map[string]string{"key.v2": k2, "active": "v2"}), live(rotated, waiting.ApplyAnnotations(map[string]string{})), "version-dropped"},
		{"retire after the TTL (expected)", secretDoc("keys", true, map[string]string{"key.v2": k2, "active": "v2"}), live(rotated, due.ApplyAnnotations(map[string]string{})), ""},
		{"promote after the rollout (expected)", secretDoc("keys", true, map[string]string{"key.v1": k1, "key.v2": k2, "active": "v2"}),
			live(map[string]string{"key.v1": k1, "key.v2": k2, "active": "v1"}, rolledOut.ApplyAnnotations(map[string]string{})), ""},
		{"promote to something else", secretDoc("keys", true, map[string]string{"key.v1": k1, "key.v2": k2, "active": "v1"}), live(rotated, rolledOut.ApplyAnnotations(map[string]string{})), "active-changed"},
		{"adding a version (manual step 1)", secretDoc("keys", true, map[string]string{"key.v1": k1, "key.v2": k2, "active": "v1"}),
			live(map[string]string{"key.v1": k1, "active": "v1"}, nil), ""},
		// Issue 15.2: a rollback to a revision rendered during the TTL wait, or a chart that generates v1 when it
		// is missing, adds back a version the rotation retired.
		{"retired version back (rollback to the TTL wait)", secretDoc("keys", true, rotated), live(onlyV2, retired.ApplyAnnotations(map[string]string{})), "version-retired"},
		{"retired version back, mark from an older rotation", secretDoc("keys", true, map[string]string{"key.v1": k1, "key.v2": k2, "key.v3": k1, "active": "v3"}),
			live(map[string]string{"key.v2": k2, "key.v3": k1, "active": "v3"}, waitingV3.ApplyAnnotations(map[string]string{})), "version-retired"},
		{"lost active restored after an abort (needed, below the mark)", secretDoc("keys", true, map[string]string{"key.v2": k2, "active": "v2"}),
			live(map[string]string{"active": "v2"}, abortedBack.ApplyAnnotations(map[string]string{})), ""},
		{"a new version above the mark", secretDoc("keys", true, map[string]string{"key.v2": k2, "key.v3": k1, "active": "v2"}), live(onlyV2, retired.ApplyAnnotations(map[string]string{})), ""},
		{"stringData wins", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: keys\n  annotations: {helm.sh/resource-policy: keep}\nstringData:\n  key.v1: " + k1 + "\n  key.v2: " + k2 + "\n  active: v2\n", live(rotated, nil), ""},
		{"inside a List", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: keys\n", live(rotated, nil), "keep-policy-dropped,version-dropped,key-bytes-changed,active-changed"},
	}
	for _, tt := range tests {
		rendered, err := FindSecret([]byte(tt.stream), "ns", "keys")
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		got := rules(Check(rendered, tt.live, now))
		if tt.name == "inside a List" {
			if !strings.Contains(got, "version-dropped") {
				t.Errorf("%s: got %q", tt.name, got)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestFindSecretRefusesAmbiguity(t *testing.T) {
	doc := secretDoc("keys", true, map[string]string{"key.v1": k1, "active": "v1"})
	if _, err := FindSecret([]byte(doc+"---\n"+doc), "ns", "keys"); err == nil || !strings.Contains(err.Error(), "2 times") {
		t.Fatalf("duplicate Secrets: %v", err)
	}
	for name, stream := range map[string]string{
		"not yaml":    "kind: Secret\n  bad: [\n",
		"bad base64":  "apiVersion: v1\nkind: Secret\nmetadata:\n  name: keys\ndata:\n  key.v1: '%%%'\n",
		"data a list": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: keys\ndata: [1, 2]\n",
	} {
		if _, err := FindSecret([]byte(stream), "ns", "keys"); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	for name, stream := range map[string]string{
		"empty":          "",
		"comments only":  "# nothing\n",
		"no kind":        "metadata:\n  name: keys\n",
		"CRLF":           strings.ReplaceAll(deployment, "\n", "\r\n"),
		"other kinds":    deployment,
		"scalar doc":     "just a string\n",
		"list not items": "apiVersion: v1\nkind: List\nitems: 3\n",
	} {
		if r, err := FindSecret([]byte(stream), "ns", "keys"); err != nil || r != nil {
			t.Errorf("%s: got %v %v, want no Secret and no error", name, r, err)
		}
	}
}

// The guard reads a render as Helm applies it, or refuses it: a mapping with a key twice (Helm keeps the last, a
// first-match reader the first) is refused, and a kind spelled with escapes is still the Secret.
func TestFindSecretReadsWhatHelmApplies(t *testing.T) {
	head := "apiVersion: v1\nmetadata:\n  name: keys\n"
	for name, stream := range map[string]string{
		"a data key twice":    head + "kind: Secret\ndata:\n  key.v1: " + b64(k1) + "\n  key.v1: " + b64(k2) + "\n  active: " + b64("v1") + "\n",
		"kind twice":          head + "kind: ConfigMap\nkind: Secret\ndata:\n  active: " + b64("v2") + "\n",
		"kind as !!binary":    head + "kind: !!binary U2VjcmV0\ndata:\n  active: " + b64("v2") + "\n",
		"name as !!binary":    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: !!binary a2V5cw==\ndata:\n  active: " + b64("v2") + "\n",
		"metadata name twice": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: other\n  name: keys\ndata:\n  active: " + b64("v2") + "\n",
	} {
		if r, err := FindSecret([]byte(stream), "ns", "keys"); err == nil || !strings.Contains(err.Error(), "twice") && !strings.Contains(err.Error(), "tag") {
			t.Errorf("%s: want a refusal naming the duplicate, got %v %v", name, r, err)
		} else if strings.Contains(err.Error(), b64(k1)) || strings.Contains(err.Error(), b64(k2)) {
			t.Errorf("%s: the refusal shows a key: %v", name, err)
		}
	}
	for name, kind := range map[string]string{"\\x escape": `"Secre\x74"`, "\\u escape": `"\u0053ecret"`, "escaped line break": "\"Sec\\\n  ret\""} {
		r, err := FindSecret([]byte(head+"kind: "+kind+"\ndata:\n  active: "+b64("v2")+"\n"), "ns", "keys")
		if err != nil || r == nil || string(r.Data["active"]) != "v2" {
			t.Errorf("kind with %s: got %v %v, want the Secret", name, r, err)
		}
	}
}

func TestRefusalNamesEverythingButKeys(t *testing.T) {
	rendered, _ := FindSecret([]byte(secretDoc("keys", true, map[string]string{"key.v1": k2, "active": "v1"})), "ns", "keys")
	r := &Refusal{Release: "app", Namespace: "ns", Secret: "keys", Where: PostRenderer, Findings: Check(rendered, live(map[string]string{"key.v1": k1, "key.v2": k2, "active": "v2"}, nil), now)}
	msg := r.Error()
	for _, want := range []string{`release "app"`, "ns/keys", "v1", "v2", "Probable cause:", "--reuse-values", "rotate-key upgrade"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the refusal must name %q:\n%s", want, msg)
		}
	}
	for _, key := range []string{k1, k2, b64(k1), b64(k2)} {
		if strings.Contains(msg, key) {
			t.Fatal("the refusal contains key material")
		}
	}
}

func FuzzFindSecret(f *testing.F) {
	f.Add([]byte(secretDoc("keys", true, map[string]string{"key.v1": k1, "active": "v1"})))
	f.Add([]byte(deployment + "---\n" + secretDoc("keys", false, map[string]string{"v1": k1})))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems:\n- kind: Secret\n  metadata: {name: keys}\n  stringData: {active: v1}\n"))
	f.Add([]byte("---\n# c\r\n---\n"))
	l := live(map[string]string{"key.v1": k1, "key.v2": k2, "active": "v2"}, nil)
	f.Fuzz(func(t *testing.T, stream []byte) {
		rendered, err := FindSecret(stream, "ns", "keys")
		if err != nil {
			return
		}
		findings := Check(rendered, l, now)
		_ = CheckOffline(rendered)
		if rendered == nil && len(findings) == 0 {
			t.Fatal("a stream without the Secret must be refused when the live Secret exists")
		}
		msg := (&Refusal{Release: "app", Namespace: "ns", Secret: "keys", Findings: findings}).Error()
		if strings.Contains(msg, k1) || strings.Contains(msg, k2) {
			t.Fatal("key material in a refusal")
		}
	})
}

func TestCheckDescribed(t *testing.T) {
	l := live(map[string]string{"key.v1": k1, "key.v2": k2, "active": "v2"}, nil)
	same := Described{Present: true, Keep: true, Active: "v2", Versions: map[string]string{"key.v1": Fingerprint([]byte(k1)), "key.v2": Fingerprint([]byte(k2))}}
	parsed, err := ParseDescribed(same.String())
	if err != nil || parsed.String() != same.String() {
		t.Fatalf("round trip: %v %q", err, parsed.String())
	}
	if f := CheckDescribed(parsed, l, now); len(f) != 0 {
		t.Fatalf("the live keyring described must pass: %v", rules(f))
	}
	old := Described{Present: true, Keep: true, Active: "v1", Versions: map[string]string{"key.v1": Fingerprint([]byte(k1))}}
	if got := rules(CheckDescribed(old, l, now)); got != "version-dropped,active-changed" {
		t.Fatalf("a pre-rotation revision: got %q", got)
	}
	if got := rules(CheckDescribed(Described{}, l, now)); got != "secret-not-rendered" {
		t.Fatalf("absent: got %q", got)
	}
	for _, bad := range []string{"keep", "key.v1=xyz", "key.v1=" + strings.Repeat("g", 16)} {
		if _, err := ParseDescribed(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
	if strings.Contains(same.String(), k1) || strings.Contains(same.String(), b64(k1)) {
		t.Fatal("a description holds key material")
	}
}

// Only documents that can hold a Secret are parsed: the keyring is found among thousands of other documents, in
// any position, and a separator-looking line inside another document cannot hide it.
func TestCandidatesKeepEverySecret(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 3000; i++ {
		if i == 1777 {
			b.WriteString("---\n" + secretDoc("keys", true, map[string]string{"key.v1": k1, "active": "v1"}))
		}
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c%d\ndata:\n  script: |\n    echo start\n    echo ---\n", i)
	}
	r, err := FindSecret([]byte(b.String()), "ns", "keys")
	if err != nil || r == nil || string(r.Data["active"]) != "v1" {
		t.Fatalf("the keyring among 3000 documents: %v %v", r, err)
	}
	if got := len(candidates([]byte(b.String()))); got > 1000 {
		t.Fatalf("candidates kept %d bytes: the other documents must not be parsed", got)
	}
}

// The guard hook's --expect is written by the chart but may be edited in a Job by hand: refused, or read into a
// description that formats back to itself — never a panic.
func FuzzParseDescribed(f *testing.F) {
	f.Add("absent")
	f.Add("keep=true;active=v2;key.v1=0123456789abcdef;key.v2=fedcba9876543210")
	f.Add("keep=;active=;=0123456789abcdef")
	f.Add("keep=true;key.v1=XYZ")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDescribed(s)
		if err != nil {
			return
		}
		again, err := ParseDescribed(d.String())
		if err != nil || again.String() != d.String() {
			t.Fatalf("%q does not survive its round trip: %v %q", s, err, again.String())
		}
	})
}

// The keyring's name from the stream: the Secret with the library's annotations, else the one Secret whose data
// has the keyring's shape (active and a version) — a third-party chart names its keyring as it likes and may
// render an unrelated Secret under the default name (found by the resurrection test on such a chart).
func TestSecretNameHint(t *testing.T) {
	admin := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-requests-proxy-admin\ndata:\n  token: " + b64("x") + "\n"
	keys := secretDoc("app-requests-proxy-keys", true, map[string]string{"v1": k1, "active": "v1"})
	library := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: lib\n  annotations:\n    " + ConfigAnnotation + ": \"60\"\ndata:\n  key.v1: " + b64(k1) + "\n"
	for name, tt := range map[string]struct{ stream, want string }{
		"library annotation":          {admin + "---\n" + library + "---\n" + keys, "lib"},
		"keyring shape":               {admin + "---\n" + keys, "app-requests-proxy-keys"},
		"keyring shape in stringData": {admin + "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: sd\nstringData:\n  key.v2: x\n  active: v2\n", "sd"},
		"two keyring shapes":          {keys + "---\n" + strings.Replace(keys, "app-requests-proxy-keys", "other", 1), ""},
		"no keyring":                  {admin + "---\n" + deployment, ""},
		"active without a version":    {"apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\ndata:\n  active: " + b64("v1") + "\n", ""},
	} {
		if got := SecretNameHint([]byte(tt.stream)); got != tt.want {
			t.Errorf("%s: got %q, want %q", name, got, tt.want)
		}
	}
}
