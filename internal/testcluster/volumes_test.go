package testcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// A reader of the folder sees the old set or the new one: removed keys disappear, new ones appear, old stamps go.
func TestWriteAtomicallyUpdatesLikeTheKubelet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	if err := writeAtomically(dir, map[string][]byte{"key.v1": []byte("a"), "active": []byte("v1")}); err != nil {
		t.Fatal(err)
	}
	if err := writeAtomically(dir, map[string][]byte{"key.v2": []byte("b"), "active": []byte("v2")}); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 4 { // ..<stamp>, ..data, active, key.v2
		t.Fatalf("folder holds %v", names)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "active")); err != nil || string(b) != "v2" {
		t.Fatalf("active reads %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "key.v1")); !os.IsNotExist(err) {
		t.Fatalf("key.v1 must be gone: %v", err)
	}
}

// Two clusters on one machine never share a pod network, and the network maps only its own pod IPs.
func TestPodNetworksAreExclusive(t *testing.T) {
	a, err := claimPodNetwork()
	if err != nil {
		t.Fatal(err)
	}
	defer a.release()
	b, err := claimPodNetwork()
	if err != nil {
		t.Fatal(err)
	}
	defer b.release()
	if a.octet == b.octet || a.local("10.42.3.7") != fmt.Sprintf("127.%d.3.7", a.octet) || a.local("10.1.2.3") != "10.1.2.3" {
		t.Fatalf("networks 127.%d and 127.%d; 10.42.3.7 → %s", a.octet, b.octet, a.local("10.42.3.7"))
	}
}
