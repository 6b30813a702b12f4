package testcluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRunbook(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "..", RunbookPath))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := ParseRunbook(string(text))
	if err != nil {
		t.Fatal(err)
	}
	partB, skipped := 0, 0
	for _, b := range blocks {
		if b.InPass("Part B") && strings.HasPrefix(b.Section, "Part B") {
			partB++
		}
		if b.Skip != "" {
			skipped++
		}
	}
	if len(blocks) < 20 || partB < 5 || skipped == 0 {
		t.Fatalf("the runbook parsed into %d blocks, %d in Part B, %d skipped", len(blocks), partB, skipped)
	}
	for name, doc := range map[string]string{
		"unknown marker":        "<!-- doc-test: skp — typo -->\n```sh\ntrue\n```\n",
		"skip without a reason": "<!-- doc-test: skip — -->\n```sh\ntrue\n```\n",
		"not sh":                "```bash\ntrue\n```\n",
		"unterminated":          "```sh\ntrue\n",
	} {
		if _, err := ParseRunbook(doc); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	got, err := ParseRunbook("## Part A: x\n<!-- doc-test: exit=3 -->\n```sh\nfalse\n```\n")
	if err != nil || len(got) != 1 || got[0].Exit != 3 || got[0].InPass("Part B") || !got[0].InPass("Part A") {
		t.Fatalf("got %+v, %v", got, err)
	}
}
