package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// keySet is what the app knows: every key by kid and the kid to sign with. It is written by a source and read by
// the handlers; a set is replaced whole, never edited.
type keySet struct {
	keys   map[string][]byte
	active string
	// fingerprint changes when any name or byte changes (a digest, never the bytes).
	fingerprint [32]byte
}

// kids lists the known kids in version order, for logs (never the key bytes).
func (s *keySet) kids() []string {
	out := make([]string, 0, len(s.keys))
	for k := range s.keys {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) < len(out[j]) || len(out[i]) == len(out[j]) && out[i] < out[j] })
	return out
}

// naming is one of the two naming styles the product supports, "key.vN" or "vN": an application reads the one its
// chart gives it and no other, so a version written under the other name is a key it does not have (the third
// attack on the instrument: an app that took both hid a rotation writing the wrong names).
type naming string

// versionName matches the data keys of this naming style; submatch 1 is the kid.
func (n naming) versionName() *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(strings.TrimSuffix(string(n), "vN")) + `(v[1-9][0-9]*)$`)
}

// parseKeys builds a key set from name → value pairs (a Secret's data as env or files). Other names are ignored:
// a Secret may carry more than the keyring. `active` is taken as it is, as an application would compare it.
func (n naming) parseKeys(data map[string][]byte) *keySet {
	versionName := n.versionName()
	s := &keySet{keys: map[string][]byte{}}
	h := sha256.New()
	names := make([]string, 0, len(data))
	for n := range data {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := data[n]
		if m := versionName.FindStringSubmatch(n); m != nil {
			s.keys[m[1]] = v
		} else if n == "active" {
			s.active = string(v)
		} else {
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(v))
		h.Write(v)
	}
	copy(s.fingerprint[:], h.Sum(nil))
	return s
}

// envKeys reads the keys from the environment once, as a process given them through env/envFrom sees them: at
// start, never again.
func (n naming) envKeys(prefix string) *keySet {
	data := map[string][]byte{}
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		if rest, ok := strings.CutPrefix(name, prefix); ok {
			data[rest] = []byte(value)
		}
	}
	return n.parseKeys(data)
}

// dirKeys reads the keys from a Secret volume: one file per data key (the kubelet's symlinks to ..data included).
func (n naming) dirKeys(dir string) (*keySet, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	data := map[string][]byte{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") {
			continue // the kubelet's atomic-writer internals
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		data[e.Name()] = b
	}
	return n.parseKeys(data), nil
}

// keyStore holds the current key set.
type keyStore struct {
	mu  sync.RWMutex
	set *keySet
}

func (k *keyStore) get() *keySet {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.set
}

// swap installs s and reports whether it differs from the previous set.
func (k *keyStore) swap(s *keySet) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	changed := k.set == nil || k.set.fingerprint != s.fingerprint
	k.set = s
	return changed
}
