package guard

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/keyring"
)

// Described is what the chart's guard hook Job is told about the keyring Secret the operation will apply: whether
// it is rendered, its keep policy, `active`, and a fingerprint of each version (never key bytes: Job arguments
// are visible to anyone who may read the Job).
//
// The description is one argument: "absent", or "keep=true;active=v2;key.v1=FP;key.v2=FP" where FP is Fingerprint.
type Described struct {
	Present bool
	Keep    bool
	Active  string
	// Versions maps each version's data key to its fingerprint.
	Versions map[string]string
}

// Fingerprint is the first 16 hex digits of a key's SHA-256: enough to tell two keys apart, nothing to recover
// one from. The chart computes the same with `sha256sum | trunc 16` over the decoded key.
func Fingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:])[:16]
}

// ParseDescribed reads the guard hook's --expect argument.
func ParseDescribed(s string) (Described, error) {
	if s == "absent" {
		return Described{}, nil
	}
	d := Described{Present: true, Versions: map[string]string{}}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return d, fmt.Errorf("--expect %q: %q is not NAME=VALUE", s, part)
		}
		switch k {
		case "keep":
			d.Keep = v == "true"
		case "active":
			d.Active = v
		default:
			if len(v) != 16 || strings.Trim(v, "0123456789abcdef") != "" {
				return d, fmt.Errorf("--expect: the fingerprint of %s is not 16 hex digits", k)
			}
			d.Versions[k] = v
		}
	}
	return d, nil
}

// String is the --expect form of d.
func (d Described) String() string {
	if !d.Present {
		return "absent"
	}
	parts := []string{fmt.Sprintf("keep=%v", d.Keep), "active=" + d.Active}
	names := make([]string, 0, len(d.Versions))
	for n := range d.Versions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		parts = append(parts, n+"="+d.Versions[n])
	}
	return strings.Join(parts, ";")
}

// CheckDescribed is Check for a described render: both sides are compared by fingerprint.
func CheckDescribed(d Described, live *Live, now time.Time) []Finding {
	if live == nil {
		return nil
	}
	fingerprinted := &Live{Data: map[string][]byte{}, Annotations: live.Annotations}
	for name, b := range live.Data {
		if name == keyring.ActiveKey {
			fingerprinted.Data[name] = b
		} else {
			fingerprinted.Data[name] = []byte(Fingerprint(b))
		}
	}
	if !d.Present {
		return compare(nil, fingerprinted, now, false)
	}
	r := &Rendered{Data: map[string][]byte{keyring.ActiveKey: []byte(d.Active)}, Annotations: map[string]string{}}
	if d.Keep {
		r.Annotations[KeepAnnotation] = "keep"
	}
	for name, fp := range d.Versions {
		r.Data[name] = []byte(fp)
	}
	return compare(r, fingerprinted, now, false)
}
