package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateReference = flag.Bool("update", false, "rewrite docs/cli.md")

// The command reference in docs/cli.md is the binary's own: regenerated and compared on every test run.
func TestCLIReference(t *testing.T) {
	root := NewRootCommand(Streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, func(string) string { return "" })
	var b bytes.Buffer
	WriteReference(&b, root)
	path := filepath.Join("..", "..", "docs", "cli.md")
	if *updateReference {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, b.Bytes()) {
		t.Fatalf("docs/cli.md is stale: run go test ./internal/cli -run TestCLIReference -update")
	}
	for _, cmd := range []string{"## rotate-key run", "## rotate-key upgrade", "## rotate-key rollback", "## rotate-key hook guard", "## rotate-key status"} {
		if !strings.Contains(b.String(), cmd) {
			t.Errorf("the reference lacks %q", cmd)
		}
	}
}
