package keyring

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math"
)

// EncodingKind is the alphabet a chart's keys are written in.
type EncodingKind string

const (
	// Alphanumeric keys use A–Z, a–z, 0–9 (Helm's randAlphaNum).
	Alphanumeric EncodingKind = "alphanumeric"
	// Hex keys use 0–9, a–f (lower case).
	Hex EncodingKind = "hex"
	// Base64 keys are random bytes in base64 (standard or URL alphabet, padded or not).
	Base64 EncodingKind = "base64"
	// Raw keys are random bytes.
	Raw EncodingKind = "raw"
)

// Encoding is what a new key must look like so that applications read it like the existing ones: the same
// alphabet and the same length (never less than 256 bits of entropy).
type Encoding struct {
	Kind   EncodingKind
	Length int
	// b64 is the base64 variant, for Base64.
	b64 *base64.Encoding
}

func (e Encoding) String() string { return fmt.Sprintf("%s(%d)", e.Kind, e.Length) }

func (e Encoding) alphabetSize() int {
	switch e.Kind {
	case Hex:
		return 16
	case Alphanumeric:
		return 62
	case Base64:
		return 64
	}
	return 256
}

const alphanumerics = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// DetectEncoding classifies a key by the narrowest alphabet that holds all its bytes.
func DetectEncoding(key []byte) Encoding {
	isHex, isAlnum := len(key)%2 == 0, true
	for _, b := range key {
		lowerHex := (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f')
		isHex = isHex && lowerHex
		isAlnum = isAlnum && (lowerHex || (b >= 'g' && b <= 'z') || (b >= 'A' && b <= 'Z'))
	}
	switch {
	case isHex:
		return Encoding{Kind: Hex, Length: len(key)}
	case isAlnum:
		return Encoding{Kind: Alphanumeric, Length: len(key)}
	}
	for _, variant := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if _, err := variant.DecodeString(string(key)); err == nil {
			return Encoding{Kind: Base64, Length: len(key), b64: variant}
		}
	}
	return Encoding{Kind: Raw, Length: len(key)}
}

// Generate returns a new key of this encoding from rand (crypto/rand in production): same alphabet, same length,
// and never below 256 bits of entropy — a shorter existing key gets a longer successor.
func (e Encoding) Generate(rand io.Reader) ([]byte, error) {
	switch e.Kind {
	case Alphanumeric:
		n := max(e.Length, int(math.Ceil(minEntropyBits/math.Log2(62))))
		out := make([]byte, 0, n)
		buf := make([]byte, 64)
		for len(out) < n {
			if _, err := io.ReadFull(rand, buf); err != nil {
				return nil, fmt.Errorf("reading the random source: %w", err)
			}
			for _, b := range buf {
				// Rejection sampling: 248 = 4×62, so every symbol is equally likely.
				if b < 248 && len(out) < n {
					out = append(out, alphanumerics[b%62])
				}
			}
		}
		return out, nil
	case Hex:
		raw, err := randomBytes(rand, max(e.Length/2, 32))
		if err != nil {
			return nil, err
		}
		return []byte(hex.EncodeToString(raw)), nil
	case Base64:
		variant := e.b64
		if variant == nil {
			variant = base64.StdEncoding
		}
		raw, err := randomBytes(rand, max(variant.DecodedLen(e.Length), 32))
		if err != nil {
			return nil, err
		}
		return []byte(variant.EncodeToString(raw)), nil
	}
	return randomBytes(rand, max(e.Length, 32))
}

func randomBytes(rand io.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, fmt.Errorf("reading the random source: %w", err)
	}
	return b, nil
}
