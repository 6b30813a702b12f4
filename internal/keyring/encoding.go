package keyring

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
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
	// Printable keys use A–Z, a–z, 0–9 and some ASCII symbols (a password manager's keys).
	Printable EncodingKind = "printable"
	// Raw keys are random bytes.
	Raw EncodingKind = "raw"
)

// whitespace may end a key written with echo or a text editor; its successor ends the same way.
const whitespace = " \t\r\n"

// Encoding is what a new key must look like so that applications read it like the existing ones: the same
// alphabet, the same length (never less than 256 bits of entropy) and the same trailing whitespace.
type Encoding struct {
	Kind EncodingKind
	// Length is the whole key's length in bytes, trailing whitespace included.
	Length int
	// b64 is the base64 variant and decoded the number of bytes the key decodes to, for Base64: a successor decodes
	// to as many (length-checking consumers).
	b64     *base64.Encoding
	decoded int
	// symbols are the non-alphanumerics a Printable key uses: its successor uses no others.
	symbols string
	// suffix is the whitespace the key ends with (a key written with echo): its successor ends the same way.
	suffix string
	// unmatched says why no successor could be read like this key; Generate refuses with it.
	unmatched string
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
	case Printable:
		return len(alphanumerics) + len(e.symbols)
	}
	return 256
}

const alphanumerics = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// DetectEncoding classifies a key by the narrowest alphabet that holds all its bytes, apart from trailing whitespace.
func DetectEncoding(key []byte) Encoding {
	body := bytes.TrimRight(key, whitespace)
	if len(body) == len(key) || len(body) == 0 {
		return detectBody(key)
	}
	e := detectBody(body)
	if e.Kind == Raw {
		return detectBody(key) // random bytes that happen to end in a whitespace byte
	}
	e.Length, e.suffix = len(key), string(key[len(body):])
	return e
}

func detectBody(key []byte) Encoding {
	isHex, isAlnum, isPrintable, spaced := len(key)%2 == 0, true, true, false
	symbols := map[byte]bool{}
	for _, b := range key {
		lowerHex := (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f')
		isHex = isHex && lowerHex
		alnum := lowerHex || (b >= 'g' && b <= 'z') || (b >= 'A' && b <= 'Z')
		isAlnum = isAlnum && alnum
		switch {
		case alnum:
		case b > ' ' && b < 0x7f:
			symbols[b] = true
		case bytes.IndexByte([]byte(whitespace), b) >= 0:
			spaced = true
		default:
			isPrintable = false
		}
	}
	switch {
	case isHex:
		return Encoding{Kind: Hex, Length: len(key)}
	case isAlnum:
		return Encoding{Kind: Alphanumeric, Length: len(key)}
	}
	for _, variant := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if raw, err := variant.DecodeString(string(key)); err == nil {
			return Encoding{Kind: Base64, Length: len(key), b64: variant, decoded: len(raw)}
		}
	}
	if !isPrintable {
		return Encoding{Kind: Raw, Length: len(key)}
	}
	e := Encoding{Kind: Printable, Length: len(key)}
	for b := range symbols {
		e.symbols += string(b)
	}
	e.symbols = sortedBytes(e.symbols)
	if spaced {
		e.unmatched = "the active key has whitespace inside it (a space, tab or line break between other characters): rotate-key cannot tell how your applications read it, so it generates no successor"
	}
	return e
}

func sortedBytes(s string) string {
	b := []byte(s)
	slices.Sort(b)
	return string(b)
}

// Generate returns a new key of this encoding from rand (crypto/rand in production): same alphabet, same length,
// same trailing whitespace, and never below 256 bits of entropy — a shorter existing key gets a longer successor.
func (e Encoding) Generate(rand io.Reader) ([]byte, error) {
	if e.unmatched != "" {
		return nil, errors.New(e.unmatched)
	}
	key, err := e.generateBody(rand, e.Length-len(e.suffix))
	if err != nil {
		return nil, err
	}
	return append(key, e.suffix...), nil
}

func (e Encoding) generateBody(rand io.Reader, length int) ([]byte, error) {
	switch e.Kind {
	case Alphanumeric:
		return fromAlphabet(rand, alphanumerics, length)
	case Printable:
		return fromAlphabet(rand, alphanumerics+e.symbols, length)
	case Hex:
		raw, err := randomBytes(rand, max(length/2, 32))
		if err != nil {
			return nil, err
		}
		return []byte(hex.EncodeToString(raw)), nil
	case Base64:
		variant := e.b64
		if variant == nil {
			variant = base64.StdEncoding
		}
		n := e.decoded
		if n == 0 {
			n = variant.DecodedLen(length)
		}
		raw, err := randomBytes(rand, max(n, 32))
		if err != nil {
			return nil, err
		}
		return []byte(variant.EncodeToString(raw)), nil
	}
	return randomBytes(rand, max(length, 32))
}

// fromAlphabet draws max(length, enough for 256 bits) symbols of alphabet, each equally likely.
func fromAlphabet(rand io.Reader, alphabet string, length int) ([]byte, error) {
	n := max(length, int(math.Ceil(minEntropyBits/math.Log2(float64(len(alphabet))))))
	limit := 256 - 256%len(alphabet) // rejection sampling: bytes below limit map onto the alphabet evenly
	out := make([]byte, 0, n)
	buf := make([]byte, 64)
	for len(out) < n {
		if _, err := io.ReadFull(rand, buf); err != nil {
			return nil, fmt.Errorf("reading the random source: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return out, nil
}

func randomBytes(rand io.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, fmt.Errorf("reading the random source: %w", err)
	}
	return b, nil
}
