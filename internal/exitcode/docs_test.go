package exitcode

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated table in docs/exit-codes.md")

const (
	beginMarker = "<!-- BEGIN exit-codes (generated from internal/exitcode) -->\n"
	endMarker   = "<!-- END exit-codes -->"
)

// TestDocsTableMatchesCode keeps docs/exit-codes.md from drifting from Table.
func TestDocsTableMatchesCode(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "exit-codes.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start, end := strings.Index(doc, beginMarker), strings.Index(doc, endMarker)
	if start < 0 || end < start {
		t.Fatalf("%s lacks the generated-table markers", path)
	}
	current := doc[start+len(beginMarker) : end]
	if current == Markdown() {
		return
	}
	if *update {
		doc = doc[:start+len(beginMarker)] + Markdown() + doc[end:]
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%s is out of date with internal/exitcode; run: go test ./internal/exitcode -update", path)
}
