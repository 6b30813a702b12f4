// Package docs holds the project's documentation; its test checks every relative link and anchor in README.md
// and docs/, so a renamed file or heading cannot leave a dead link behind.
package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	linkPattern    = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)\)`)
	headingPattern = regexp.MustCompile("(?m)^#{1,6} +(.+)$")
	fencePattern   = regexp.MustCompile("(?ms)^```.*?^```")
)

// anchor is GitHub's id for a heading: lower case, punctuation dropped, spaces to hyphens.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range headingPattern.FindAllStringSubmatch(fencePattern.ReplaceAllString(string(text), ""), -1) {
		id := anchor(m[1])
		for n := 1; out[id]; n++ { // GitHub numbers repeated headings
			id = anchor(m[1]) + "-" + string(rune('0'+n))
		}
		out[id] = true
	}
	return out
}

func TestRelativeLinksAndAnchorsResolve(t *testing.T) {
	files := []string{filepath.Join("..", "README.md")}
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	links := 0
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		body := fencePattern.ReplaceAllString(string(text), "")
		for _, m := range linkPattern.FindAllStringSubmatch(body, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			links++
			path, frag, _ := strings.Cut(target, "#")
			resolved := file
			if path != "" {
				resolved = filepath.Join(filepath.Dir(file), path)
				if _, err := os.Stat(resolved); err != nil {
					t.Errorf("%s: link %q: %s does not exist", file, target, resolved)
					continue
				}
			}
			if frag != "" && strings.HasSuffix(resolved, ".md") && !anchors(t, resolved)[frag] {
				t.Errorf("%s: link %q: no heading with anchor #%s in %s", file, target, frag, resolved)
			}
		}
	}
	if links < 10 {
		t.Fatalf("only %d relative links found in %d files: the scan is broken", links, len(files))
	}
	t.Logf("%d relative links in %d files resolve", links, len(files))
}
