package helmexec

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// (moved from internal/cli/hookpath_test.go, TestShellQuote)
func TestQuote(t *testing.T) {
	got := Quote([]string{"helm", "upgrade", "--description", "rotate-key: it's v2", "--set", "a=b", ""})
	want := `helm upgrade --description 'rotate-key: it'\''s v2' --set a=b ''`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

type versionOnly string

func (v versionOnly) Run(context.Context, []string, io.Reader, io.Writer, io.Writer) error {
	return errors.New("unused")
}
func (v versionOnly) Output(context.Context, ...string) ([]byte, error) { return []byte(v), nil }

func TestMajor(t *testing.T) {
	for out, want := range map[string]int{"v3.22.0": 3, "v4.3.1\n": 4, "v5.0.0": 0, "": 0} {
		got, err := Major(context.Background(), versionOnly(out))
		if got != want || (want == 0) != (err != nil) {
			t.Errorf("%q: got %d, %v; want %d", out, got, err, want)
		}
	}
}

func TestExecKeepsTheExitCode(t *testing.T) {
	err := Exec{Bin: "sh"}.Run(context.Background(), []string{"-c", "exit 7"}, nil, io.Discard, io.Discard)
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 7 || !strings.Contains(err.Error(), "exited with 7") {
		t.Fatalf("got %v", err)
	}
}
