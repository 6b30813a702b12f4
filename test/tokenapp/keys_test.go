package main

import (
	"os"
	"path/filepath"
	"testing"
)

// An application knows only the names of its chart's naming style: a version written in the other style is not a
// key to it, and neither is anything else in the Secret.
func TestParseKeysTakesOneStyle(t *testing.T) {
	data := map[string][]byte{"key.v1": []byte("a"), "v2": []byte("b"), "key.v3": []byte("c"), "active": []byte("v2"), "admin-token": []byte("x"), "key.v0": []byte("no")}
	if s := naming("key.vN").parseKeys(data); len(s.keys) != 2 || string(s.keys["v1"]) != "a" || string(s.keys["v3"]) != "c" || s.active != "v2" {
		t.Fatalf("key.vN: keys %v active %q", s.kids(), s.active)
	}
	if s := naming("vN").parseKeys(data); len(s.keys) != 1 || string(s.keys["v2"]) != "b" {
		t.Fatalf("vN: keys %v", s.kids())
	}
	if s := naming("vN").parseKeys(map[string][]byte{"v1": []byte("a"), "active": []byte("v1\n")}); s.active == "v1" {
		t.Fatal("an active with a newline is not v1 to an application that compares it")
	}
	if naming("vN").parseKeys(map[string][]byte{"v1": []byte("a")}).fingerprint == naming("vN").parseKeys(map[string][]byte{"v1": []byte("b")}).fingerprint {
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
	s, err := naming("key.vN").dirKeys(dir)
	if err != nil || len(s.keys) != 1 || s.active != "v1" {
		t.Fatalf("dirKeys: %v %v %q", err, s, s.active)
	}
}

func TestEnvKeysTakesOnlyThePrefix(t *testing.T) {
	t.Setenv("KR_key.v3", "k")
	t.Setenv("KR_active", "v3")
	t.Setenv("key.v9", "not mine")
	s := naming("key.vN").envKeys("KR_")
	if len(s.keys) != 1 || s.active != "v3" {
		t.Fatalf("envKeys: %v %q", s.kids(), s.active)
	}
}
