// Package image checks the OCI image `make image` writes: a static ELF binary, a non-root user, and a binary that
// runs (`version`), read straight from the OCI layout with no container runtime.
package image

import (
	"archive/tar"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
}

func blob(t *testing.T, dir string, d descriptor, v any) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "blobs", strings.Replace(d.Digest, ":", "/", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func TestImage(t *testing.T) {
	root, err := testcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("make", "-C", root, "--no-print-directory", "image").CombinedOutput()
	if err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	dir := filepath.Join(root, "dist", "oci")
	var index struct{ Manifests []descriptor }
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil || json.Unmarshal(b, &index) != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v %s", err, b)
	}
	var manifest struct {
		Config descriptor
		Layers []descriptor
	}
	blob(t, dir, index.Manifests[0], &manifest)
	var config struct {
		OS, Architecture string
		Config           struct {
			User       string
			Entrypoint []string
		}
	}
	blob(t, dir, manifest.Config, &config)
	if config.OS != "linux" || config.Config.User == "" || strings.HasPrefix(config.Config.User, "0") || strings.HasPrefix(config.Config.User, "root") {
		t.Fatalf("config: os %s, user %q: want linux and a non-root numeric user", config.OS, config.Config.User)
	}
	if len(manifest.Layers) != 1 {
		t.Fatalf("%d layers, want 1", len(manifest.Layers))
	}
	zr, err := gzip.NewReader(strings.NewReader(string(blob(t, dir, manifest.Layers[0], nil))))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	bin := filepath.Join(t.TempDir(), "rotate-key")
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Name == strings.TrimPrefix(config.Config.Entrypoint[0], "/") {
			f, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	for _, n := range names {
		if strings.HasSuffix(n, "/sh") || strings.HasSuffix(n, "/bash") {
			t.Fatalf("the image holds a shell: %s", n)
		}
	}
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("entrypoint %s is not an ELF binary: %v", config.Config.Entrypoint[0], err)
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary asks for a dynamic loader: not static")
		}
	}
	if libs, _ := ef.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("the binary links %v: not static", libs)
	}
	v, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(v), "rotate-key ") {
		t.Fatalf("rotate-key version from the image: %v %s", err, v)
	}
	t.Logf("image: user %s, entrypoint %v, files %v, %s", config.Config.User, config.Config.Entrypoint, names, strings.TrimSpace(string(v)))
}
