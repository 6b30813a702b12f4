// Package token is the token format of the test token app: a JWT-shaped HMAC-SHA256 token whose header names the
// signing key's kid and whose payload carries iat, exp and a unique id. It stands in for the tokens the ticket's
// jobs-manager signs and its requests-proxy verifies; the traffic driver reads the kid and exp of what it was given
// without knowing any key.
package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Claims are what a token says: who signed it with which key, and until when it is valid.
type Claims struct {
	// Kid names the key that signed the token (e.g. "v2").
	Kid string `json:"-"`
	// IssuedAt and Expires are Unix seconds.
	IssuedAt int64 `json:"iat"`
	Expires  int64 `json:"exp"`
	// ID is unique per token within one signer process; Issuer names the signer (its pod).
	ID     string `json:"jti"`
	Issuer string `json:"iss"`
}

type header struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

var enc = base64.RawURLEncoding

// Reasons a token is refused; Verify's error wraps exactly one.
var (
	ErrMalformed    = errors.New("malformed")
	ErrUnknownKid   = errors.New("unknown-kid")
	ErrBadSignature = errors.New("bad-signature")
	ErrExpired      = errors.New("expired")
)

// Sign returns the token for c, signed with key.
func Sign(key []byte, c Claims) (string, error) {
	h, err := json.Marshal(header{Alg: "HS256", Typ: "JWT", Kid: c.Kid})
	if err != nil {
		return "", err
	}
	p, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signing := enc.EncodeToString(h) + "." + enc.EncodeToString(p)
	return signing + "." + enc.EncodeToString(mac(key, signing)), nil
}

// Parse returns a token's claims without checking its signature: what anyone holding the token can read.
func Parse(tok string) (Claims, error) {
	c, _, _, err := split(tok)
	return c, err
}

// Verify checks tok against the keys a verifier knows (kid → key) at now, accepting a token up to skew past its
// expiry (clocks of signer and verifier differ). The error wraps one of the Err values.
func Verify(tok string, keys map[string][]byte, now time.Time, skew time.Duration) (Claims, error) {
	c, signing, sig, err := split(tok)
	if err != nil {
		return c, err
	}
	key, ok := keys[c.Kid]
	if !ok {
		return c, fmt.Errorf("%w: no key %q", ErrUnknownKid, c.Kid)
	}
	if !hmac.Equal(sig, mac(key, signing)) {
		return c, fmt.Errorf("%w: kid %q", ErrBadSignature, c.Kid)
	}
	if now.Add(-skew).Unix() >= c.Expires {
		return c, fmt.Errorf("%w: %s ago", ErrExpired, now.Sub(time.Unix(c.Expires, 0)).Round(time.Millisecond))
	}
	return c, nil
}

func split(tok string) (Claims, string, []byte, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return Claims{}, "", nil, fmt.Errorf("%w: %d parts, want 3", ErrMalformed, len(parts))
	}
	var h header
	var c Claims
	if err := decode(parts[0], &h); err != nil {
		return c, "", nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if h.Alg != "HS256" {
		return c, "", nil, fmt.Errorf("%w: alg %q, want HS256", ErrMalformed, h.Alg)
	}
	if err := decode(parts[1], &c); err != nil {
		return c, "", nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	c.Kid = h.Kid
	sig, err := enc.DecodeString(parts[2])
	if err != nil {
		return c, "", nil, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	return c, parts[0] + "." + parts[1], sig, nil
}

func decode(part string, v any) error {
	b, err := enc.DecodeString(part)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func mac(key []byte, signing string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(signing))
	return m.Sum(nil)
}
