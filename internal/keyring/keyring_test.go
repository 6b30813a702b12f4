package keyring

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

const secret = "team/app-requests-proxy-admin"

// key returns n random alphanumerics, like the chart's randAlphaNum.
func key(t testing.TB, n int) []byte {
	t.Helper()
	k, err := Encoding{Kind: Alphanumeric, Length: n}.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseValid(t *testing.T) {
	k1, k2 := key(t, 64), key(t, 64)
	tests := []struct {
		name     string
		data     map[string][]byte
		versions string
		active   int
		style    Style
		encoding EncodingKind
	}{
		{"key.vN style", map[string][]byte{"key.v1": k1, "key.v2": k2, "active": []byte("v2")}, "1,2", 2, StyleKeyDot, Alphanumeric},
		{"vN style", map[string][]byte{"v1": k1, "active": []byte("v1")}, "1", 1, StyleBare, Alphanumeric},
		{"active with a trailing newline", map[string][]byte{"v1": k1, "active": []byte("v1\n")}, "1", 1, StyleBare, Alphanumeric},
		{"mixed styles, style of active wins", map[string][]byte{"v1": k1, "key.v2": k2, "active": []byte("v2")}, "1,2", 2, StyleKeyDot, Alphanumeric},
		{"unknown data is ignored", map[string][]byte{"key.v1": k1, "active": []byte("v1"), "README": []byte("x"), "config.json": []byte("{}")}, "1", 1, StyleKeyDot, Alphanumeric},
		{"raw bytes", map[string][]byte{"key.v1": bytes.Repeat([]byte{0, 1, 2, 3, 4, 5, 6, 7, 0xff}, 4), "active": []byte("v1")}, "1", 1, StyleKeyDot, Raw},
		{"hex", map[string][]byte{"key.v3": []byte(hex.EncodeToString(key(t, 32))), "active": []byte("v3")}, "3", 3, StyleKeyDot, Hex},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := Parse(secret, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range k.Versions() {
				got = append(got, fmt.Sprint(v))
			}
			if strings.Join(got, ",") != tt.versions || k.Active != tt.active || k.Style != tt.style || k.Encoding.Kind != tt.encoding {
				t.Fatalf("got %s", k)
			}
		})
	}
}

// At least 15 malformed Secrets: each is refused with the rule it breaks, and no message carries key bytes.
func TestParseRejectsMalformedSecrets(t *testing.T) {
	good := key(t, 64)
	huge := bytes.Repeat([]byte("v"), 1<<20)
	tests := []struct {
		name string
		data map[string][]byte
		rule Rule
	}{
		{"nil data", nil, RuleActive},
		{"empty data", map[string][]byte{}, RuleActive},
		{"no versions", map[string][]byte{"active": []byte("v1")}, RuleActive},
		{"missing active", map[string][]byte{"key.v1": good}, RuleActive},
		{"garbage active", map[string][]byte{"key.v1": good, "active": []byte("latest")}, RuleActive},
		{"active holds a key", map[string][]byte{"key.v1": good, "active": good}, RuleActive},
		{"huge active", map[string][]byte{"key.v1": good, "active": huge}, RuleActive},
		{"active names a missing key", map[string][]byte{"key.v1": good, "active": []byte("v2")}, RuleActive},
		{"active v0", map[string][]byte{"key.v1": good, "active": []byte("v0")}, RuleActive},
		{"version in both styles", map[string][]byte{"key.v1": good, "v1": good, "active": []byte("v1")}, RuleOneStyle},
		{"version zero", map[string][]byte{"key.v0": good, "key.v1": good, "active": []byte("v1")}, RuleVersionNumber},
		{"leading zero", map[string][]byte{"key.v01": good, "key.v1": good, "active": []byte("v1")}, RuleVersionNumber},
		{"non-numeric version", map[string][]byte{"key.vX": good, "key.v1": good, "active": []byte("v1")}, RuleVersionNumber},
		{"negative version", map[string][]byte{"key.v-1": good, "key.v1": good, "active": []byte("v1")}, RuleVersionNumber},
		{"huge version number", map[string][]byte{"key.v99999999999": good, "key.v1": good, "active": []byte("v1")}, RuleVersionNumber},
		{"empty key", map[string][]byte{"key.v1": {}, "active": []byte("v1")}, RuleEntropy},
		{"short key", map[string][]byte{"key.v1": []byte("Sh0rtKeyAbc123"), "active": []byte("v1")}, RuleEntropy},
		{"repetitive key", map[string][]byte{"key.v1": bytes.Repeat([]byte("ab"), 64), "active": []byte("v1")}, RuleEntropy},
		{"short raw key", map[string][]byte{"key.v1": []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xfe}, "active": []byte("v1")}, RuleEntropy},
		{"old short key", map[string][]byte{"key.v1": []byte("abcdefgh"), "key.v2": good, "active": []byte("v2")}, RuleEntropy},
	}
	if len(tests) < 15 {
		t.Fatal("keep at least 15 malformed cases")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(secret, tt.data)
			var v *Violation
			if !errors.As(err, &v) || v.Rule != tt.rule {
				t.Fatalf("want rule %s, got %v", tt.rule, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, secret) || !strings.Contains(msg, "nothing was written") || !strings.Contains(msg, "To fix:") {
				t.Fatalf("message must name the Secret, say nothing was written, and how to fix: %s", msg)
			}
			for name, b := range tt.data {
				if name != "active" && len(b) >= 8 && leaks(msg, b) {
					t.Fatalf("message leaks the bytes of %s", name)
				}
			}
			if len(msg) > 600 {
				t.Fatalf("message too long (%d bytes): input echoed?", len(msg))
			}
		})
	}
}

// leaks reports whether msg holds key, raw, in base64 or in hex.
func leaks(msg string, key []byte) bool {
	return strings.Contains(msg, string(key)) || strings.Contains(msg, base64.StdEncoding.EncodeToString(key)) || strings.Contains(msg, hex.EncodeToString(key))
}

func TestGenerateMatchesEncoding(t *testing.T) {
	raw32 := key(t, 64)[:32]
	tests := []struct {
		name    string
		example []byte
		kind    EncodingKind
		length  int
	}{
		{"64 alphanumerics", key(t, 64), Alphanumeric, 64},
		{"short alphanumerics grow to 256 bits", key(t, 20), Alphanumeric, 43},
		{"raw 48 bytes", append(append([]byte{0xff, 0}, raw32...), make([]byte, 14)...), Raw, 48},
		{"hex", []byte(hex.EncodeToString(raw32)), Hex, 64},
		{"base64 padded", []byte(base64.StdEncoding.EncodeToString(raw32)), Base64, 44},
		{"base64 url raw", []byte(base64.RawURLEncoding.EncodeToString(append(raw32, 0xfb, 0xff, 0xfe))), Base64, 47},
		// Printable keys with symbols get printable successors of the same classes, never binary (an env var).
		{"printable with symbols", []byte("aB3!x9_Qz-7Lm@p2Rt5#Yw8Kd1Fg6Hj4Vb0Nc!Se_Tu-Xq@Zr#Pk"), Printable, 52},
		{"printable with a trailing newline", []byte("aB3!x9_Qz-7Lm@p2Rt5#Yw8Kd1Fg6Hj4Vb0Nc!Se_Tu-Xq@Zr#Pk\n"), Printable, 53},
		{"base64 of 32 bytes with a trailing newline", []byte(base64.StdEncoding.EncodeToString(raw32) + "\n"), Base64, 45},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := DetectEncoding(tt.example)
			if enc.Kind != tt.kind {
				t.Fatalf("detected %s, want %s", enc, tt.kind)
			}
			seen := map[string]bool{}
			for i := 0; i < 20; i++ {
				k, err := enc.Generate(rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				if len(k) != tt.length {
					t.Fatalf("generated %d bytes, want %d", len(k), tt.length)
				}
				switch tt.kind {
				case Alphanumeric, Hex:
					if DetectEncoding(k).Kind != tt.kind {
						t.Fatalf("generated %s, want %s", DetectEncoding(k), tt.kind)
					}
				case Base64: // random base64 may happen to be alphanumeric: check that it decodes in the same variant
					want, _ := enc.b64.DecodeString(strings.TrimRight(string(tt.example), whitespace))
					if b, err := enc.b64.DecodeString(strings.TrimRight(string(k), whitespace)); err != nil || len(b) != len(want) {
						t.Fatalf("generated key is not %s base64 of %d bytes (%d): %v", tt.name, len(want), len(b), err)
					}
				case Printable:
					if got, want := classes(k), classes(tt.example); strings.Trim(got, want) != "" {
						t.Fatalf("generated key uses characters of classes %q, the example %q", got, want)
					}
				}
				if got, want := strings.TrimLeft(string(k), alphanumerics+"!@#_-+/="), strings.TrimLeft(string(tt.example), alphanumerics+"!@#_-+/="); tt.kind != Raw && got != want {
					t.Fatalf("generated key ends %q, the example %q: a trailing newline must be kept", got, want)
				}
				if err := checkEntropy(k); err != nil {
					t.Fatalf("generated key fails the entropy rule: %v", err)
				}
				if seen[string(k)] {
					t.Fatal("generated the same key twice")
				}
				seen[string(k)] = true
			}
		})
	}
	if _, err := (Encoding{Kind: Raw, Length: 32}).Generate(bytes.NewReader(nil)); err == nil {
		t.Fatal("an exhausted random source must be an error")
	}
}

func TestTransitionsPatchOnlyWhatTheyChange(t *testing.T) {
	data := map[string][]byte{"key.v1": key(t, 64), "active": []byte("v1"), "unrelated": []byte("keep me")}
	k, err := Parse(secret, data)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := k.Add(rand.Reader, 1); err == nil {
		t.Fatal("Add must refuse a version that is present")
	}
	add, v, err := k.Add(rand.Reader, 2)
	if err != nil || v != 2 || add.Summary != "add key.v2" {
		t.Fatalf("Add: %v %d %q", err, v, add.Summary)
	}
	added := Apply(data, add)
	if !bytes.Equal(added["key.v1"], data["key.v1"]) || string(added["unrelated"]) != "keep me" || string(added["active"]) != "v1" || len(added["key.v2"]) != 64 {
		t.Fatal("Add touched more than key.v2")
	}
	if len(data) != 3 {
		t.Fatal("Apply modified its input")
	}
	k2, err := Parse(secret, added)
	if err != nil {
		t.Fatal(err)
	}
	promote, err := k2.Promote(2)
	if err != nil {
		t.Fatal(err)
	}
	promoted := Apply(added, promote)
	k3, err := Parse(secret, promoted)
	if err != nil || k3.Active != 2 {
		t.Fatalf("after promote: %v", err)
	}
	if _, err := k3.Remove(2, nil); err == nil {
		t.Fatal("removing the active key must be refused")
	}
	if _, err := k3.Remove(1, []string{"key.v1"}); err == nil || !strings.Contains(err.Error(), string(RulePinned)) {
		t.Fatalf("removing a pinned key must be refused: %v", err)
	}
	retire, err := k3.Remove(1, []string{"key.v2"})
	if err != nil {
		t.Fatal(err)
	}
	final := Apply(promoted, retire)
	if _, ok := final["key.v1"]; ok || string(final["unrelated"]) != "keep me" || Validate(secret, final) != nil {
		t.Fatalf("after retire: %s", DataKeys(final))
	}
	if _, err := k.Promote(7); err == nil {
		t.Fatal("promoting a missing version must be refused")
	}
}

func TestStringHasNoKeyMaterial(t *testing.T) {
	data := map[string][]byte{"v1": key(t, 64), "v2": key(t, 64), "active": []byte("v2")}
	k, err := Parse(secret, data)
	if err != nil {
		t.Fatal(err)
	}
	s := k.String()
	if leaks(s, data["v1"]) || leaks(s, data["v2"]) || !strings.Contains(s, "versions [v1 v2], active v2") {
		t.Fatalf("String: %s", s)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("key.v1", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789AB", "active", "v1")
	f.Add("v1", "short", "active", "v2")
	f.Add("key.v01", "", "active", "v01")
	f.Fuzz(func(t *testing.T, name, value, name2, value2 string) {
		data := map[string][]byte{name: []byte(value), name2: []byte(value2)}
		k, err := Parse(secret, data)
		if err != nil {
			var v *Violation
			if !errors.As(err, &v) {
				t.Fatalf("not a Violation: %v", err)
			}
			if len(value) >= 16 && strings.Contains(err.Error(), value) {
				t.Fatalf("error echoes a value: %v", err)
			}
			return
		}
		if _, ok := k.Keys[k.Active]; !ok {
			t.Fatal("parsed keyring whose active key is missing")
		}
		c, v, err := k.Add(rand.Reader, k.Newest()+1)
		if err != nil {
			if k.Encoding.unmatched == "" || leaks(err.Error(), k.Keys[k.Active]) {
				t.Fatal(err)
			}
			return // refused: a successor would not be read like the active key
		}
		old, successor := k.Keys[k.Active], c.Set[k.Style.DataKey(v)]
		if !bytes.HasSuffix(successor, []byte(k.Encoding.suffix)) || len(successor) < len(old) {
			t.Fatalf("successor of %s: %d bytes, ends %q; the active key %d bytes, ends %q", k.Encoding, len(successor), successor[len(successor)-len(k.Encoding.suffix):], len(old), k.Encoding.suffix)
		}
		if k.Encoding.Kind == Base64 && len(old) >= 44 && len(successor) != len(old) {
			t.Fatalf("successor of %s is %d bytes", k.Encoding, len(successor))
		}
		if err := Validate(secret, Apply(data, c)); err != nil {
			t.Fatalf("adding a key broke the keyring: %v", err)
		}
	})
}

// classes is the set of non-alphanumeric characters in k, sorted (a generated key may use fewer of them).
func classes(k []byte) string {
	seen := map[rune]bool{}
	for _, r := range string(k) {
		if !strings.ContainsRune(alphanumerics, r) {
			seen[r] = true
		}
	}
	var out []rune
	for r := range seen {
		out = append(out, r)
	}
	slices.Sort(out)
	return string(out)
}

// A key whose class rotate-key cannot reproduce (whitespace inside it) is refused, never given a binary successor.
func TestAddRefusesAKeyItCannotMatch(t *testing.T) {
	k, err := Parse(secret, map[string][]byte{"key.v1": []byte("aB3!x9_Qz-7Lm@p2 Rt5#Yw8Kd1Fg6Hj4Vb0Nc!Se_Tu-Xq@Zr#Pk"), "active": []byte("v1")})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = k.Add(rand.Reader, 2)
	if err == nil || !strings.Contains(err.Error(), "whitespace") || leaks(err.Error(), k.Keys[1]) {
		t.Fatalf("want a refusal naming the whitespace without the key, got %v", err)
	}
}
