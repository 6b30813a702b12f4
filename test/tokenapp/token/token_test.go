package token

import (
	"errors"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	keys := map[string][]byte{"v1": []byte("one"), "v2": []byte("two")}
	tok, err := Sign(keys["v2"], Claims{Kid: "v2", IssuedAt: now.Unix(), Expires: now.Unix() + 60, ID: "1", Issuer: "p"})
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := Sign([]byte("other"), Claims{Kid: "v2", Expires: now.Unix() + 60})
	for _, tc := range []struct {
		name string
		tok  string
		keys map[string][]byte
		at   time.Time
		want error
	}{
		{"valid", tok, keys, now, nil},
		{"valid within skew", tok, keys, now.Add(61 * time.Second), nil},
		{"expired past skew", tok, keys, now.Add(62 * time.Second), ErrExpired},
		{"kid unknown", tok, map[string][]byte{"v1": keys["v1"]}, now, ErrUnknownKid},
		{"wrong key", forged, keys, now, ErrBadSignature},
		{"garbage", "a.b", keys, now, ErrMalformed},
	} {
		c, err := Verify(tc.tok, tc.keys, tc.at, 2*time.Second)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: Verify = %v, want %v", tc.name, err, tc.want)
		}
		if tc.want != ErrMalformed && c.Kid != "v2" {
			t.Errorf("%s: kid %q, want v2", tc.name, c.Kid)
		}
	}
}

// FuzzVerify: whatever a client sends, the verifier answers with one of its reasons and never panics.
func FuzzVerify(f *testing.F) {
	tok, _ := Sign([]byte("k"), Claims{Kid: "v1", Expires: 10})
	for _, s := range []string{tok, "", "..", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.", tok + "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := Verify(s, map[string][]byte{"v1": []byte("k")}, time.Unix(5, 0), 0)
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownKid) && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrExpired) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}
