package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseKeysBothStylesAndOtherData(t *testing.T) {
	s := parseKeys(map[string][]byte{"key.v1": []byte("a"), "v2": []byte("b"), "active": []byte("v2\n"), "admin-token": []byte("x"), "key.v0": []byte("no")})
	if len(s.keys) != 2 || string(s.keys["v1"]) != "a" || string(s.keys["v2"]) != "b" || s.active != "v2" {
		t.Fatalf("keys %v active %q", s.kids(), s.active)
	}
	if parseKeys(map[string][]byte{"v1": []byte("a")}).fingerprint == parseKeys(map[string][]byte{"v1": []byte("b")}).fingerprint {
		t.Fatal("a changed key must change the fingerprint")
	}
}

// The kubelet's volume layout: visible names are links through ..data, which is swapped whole.
func TestDirKeysReadsTheKubeletLayout(t *testing.T) {
	dir := t.TempDir()
	stamp := filepath.Join(dir, "..2026_11_30")
	if err := os.Mkdir(stamp, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"key.v1": "a", "active": "v1"} {
		if err := os.WriteFile(filepath.Join(stamp, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("..2026_11_30", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	s, err := dirKeys(dir)
	if err != nil || len(s.keys) != 1 || s.active != "v1" {
		t.Fatalf("dirKeys: %v %v %q", err, s, s.active)
	}
}

func TestEnvKeysTakesOnlyThePrefix(t *testing.T) {
	t.Setenv("KR_key.v3", "k")
	t.Setenv("KR_active", "v3")
	t.Setenv("key.v9", "not mine")
	s := envKeys("KR_")
	if len(s.keys) != 1 || s.active != "v3" {
		t.Fatalf("envKeys: %v %q", s.kids(), s.active)
	}
}
