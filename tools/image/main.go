// Command image writes the rotate-key OCI image as an OCI layout, with no Docker engine and no registry: an empty
// base (go-containerregistry's empty.Image), one layer holding the static binary and a passwd entry for a
// non-root user, and a config that runs the binary as that user. Publish the layout with any OCI tool, e.g.
// `crane push dist/oci REGISTRY/rotate-key:TAG` or `skopeo copy oci:dist/oci docker://REGISTRY/rotate-key:TAG`.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// uid is the image's user: the conventional "nonroot" of distroless images, numeric so that runAsNonRoot can
// verify it without a passwd lookup.
const uid = 65532

func main() {
	binary := flag.String("binary", "", "the static linux rotate-key binary")
	out := flag.String("out", "", "folder to write the OCI layout to (replaced)")
	arch := flag.String("arch", "amd64", "architecture of the binary")
	version := flag.String("version", "dev", "version label")
	flag.Parse()
	if err := run(*binary, *out, *arch, *version); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(binary, out, arch, version string) error {
	if binary == "" || out == "" {
		return fmt.Errorf("--binary and --out are required")
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"etc/passwd", 0o644, []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", uid, uid))},
		{"etc/group", 0o644, []byte(fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", uid))},
		{"rotate-key", 0o755, bin},
	}
	for _, dir := range []string{"etc/", "home/", "home/nonroot/", "tmp/"} {
		mode := int64(0o755)
		if dir == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: mode, ModTime: epoch}); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Created = "linux", arch, v1.Time{Time: epoch}
	cfg.Config.User = fmt.Sprintf("%d:%d", uid, uid)
	cfg.Config.Entrypoint = []string{"/rotate-key"}
	cfg.Config.WorkingDir = "/home/nonroot"
	cfg.Config.Env = []string{"HOME=/home/nonroot"}
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.title": "rotate-key", "org.opencontainers.image.version": version,
		"org.opencontainers.image.source": "https://github.com/tracebloc/helm-rotate-key"}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	p, err := layout.Write(out, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": version})); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s (image %s, user %d, %d-byte binary)\n", out, digest, uid, len(bin))
	return nil
}
