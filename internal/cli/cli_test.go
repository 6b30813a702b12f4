package cli

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
)

// execute runs the root command with args and returns stdout, stderr and the exit code main would return.
func execute(t *testing.T, stdin string, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := NewRootCommand(Streams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}, func(k string) string { return env[k] })
	root.SetArgs(args)
	code := Report(root.Execute(), &errOut)
	return out.String(), errOut.String(), code
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{{"release-a", "extra"}, {"run"}, {"run", "r", "--ttl", "soon"}, {"run", "r", "--force"}, {"run", "r", "--consumer", "Pod/x"}, {"--no-such-flag"}, {"status"}, {"status", "a", "b"}, {"version", "-o", "xml"}, {"status", "r", "-o", "xml"},
		{"run", "r", "--emergency"}, {"run", "r", "--emergency", "--reason", " "}, {"retire", "r", "--emergency", "--reason", "x"},
		{"run", "r", "--emergency", "--reason", "x", "--ttl", "1h"}, {"abort", "r", "--emergency", "--reason", "x"}} {
		_, stderr, code := execute(t, "", nil, args...)
		if code != int(exitcode.Usage) || !strings.HasPrefix(stderr, "Error: ") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and an error", args, code, stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	out, _, code := execute(t, "", nil, "version")
	if code != 0 || !strings.HasPrefix(out, "rotate-key ") {
		t.Fatalf("version: %d %q", code, out)
	}
	out, _, code = execute(t, "", nil, "version", "-o", "json")
	if code != 0 || !strings.Contains(out, `"goVersion"`) {
		t.Fatalf("version -o json: %d %q", code, out)
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		out, _, code := execute(t, "", nil, "completion", shell)
		if code != 0 || !strings.Contains(out, "rotate-key") {
			t.Errorf("completion %s: exit %d, %d bytes", shell, code, len(out))
		}
	}
}

func TestArgsMapsTheGuardExecutable(t *testing.T) {
	cases := map[string][]string{
		"/x/bin/rotate-key-guard": {"guard", "--release=r"},
		"rotate-key-guard.exe":    {"guard", "--release=r"},
		"/x/bin/rotate-key":       {"--release=r"},
	}
	for argv0, want := range cases {
		if got := Args([]string{argv0, "--release=r"}); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("Args(%s) = %v, want %v", argv0, got, want)
		}
	}
}

// The guard writes back exactly the bytes it read: Helm 4 annotations, hooks, comments, CRLF line ends and all.
func TestGuardPassesStreamsThroughByteForByte(t *testing.T) {
	streams := map[string]string{
		"helm4 with filename annotations": "---\n# Source: app/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n    postrenderer.helm.sh/postrender-filename: app/templates/a.yaml\ndata: {x: \"1\"}\n---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: hook\n  annotations:\n    helm.sh/hook: pre-upgrade\n",
		"crlf and comments":               "# top\r\napiVersion: v1\r\nkind: Secret\r\nmetadata: {name: s}\r\ndata:\r\n  key.v1: YWJj # inline\r\n",
		"kind List":                       "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n",
		"no trailing newline":             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}",
	}
	for name, in := range streams {
		t.Run(name, func(t *testing.T) {
			out, stderr, code := execute(t, in, nil, "guard", "--release", "app", "--offline")
			if code != 0 || out != in {
				t.Fatalf("exit %d, stderr %q, output differs: %q", code, stderr, out)
			}
		})
	}
	// Only documents that can hold a Secret are parsed; the others are Helm's to parse, right after the guard.
	_, stderr, code := execute(t, "kind: Secret\na: [\n", nil, "guard", "--release", "app", "--offline")
	if code != int(exitcode.Refused) || !strings.Contains(stderr, `guard refused release "app"`) {
		t.Fatalf("invalid YAML in a Secret: exit %d, %q", code, stderr)
	}
	out, stderr, code := execute(t, "", nil, "guard", "--release", "app", "--offline")
	if code != int(exitcode.Refused) || out != "" || !strings.Contains(stderr, "received no manifests") {
		t.Fatalf("empty input must be refused: exit %d, %q", code, stderr)
	}
	_, stderr, code = execute(t, "kind: ConfigMap\n", nil, "guard", "--offline")
	if code != int(exitcode.Usage) || !strings.Contains(stderr, "--post-renderer-args --release=NAME") {
		t.Fatalf("no release: exit %d, %q", code, stderr)
	}
}

// A 10 MB stream of 20,000 documents with the keyring Secret in the middle: passed through byte for byte.
func TestGuardTenMegabyteStream(t *testing.T) {
	var b strings.Builder
	for i := 0; b.Len() < 10<<20; i++ {
		if i == 10000 {
			b.WriteString("---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: app-requests-proxy-admin\n  annotations:\n    helm.sh/resource-policy: keep\ndata:\n  key.v1: YUIzZEU1Z0g3aks5bU4xcFEzc1Q1dlg3ekE5Y0UxZ0kza001b1E3c1U5d1kxYUMzZUc1aUs3bU85cVMxdVcz\n  active: djE=\n")
		}
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%d\ndata:\n  payload: %q\n", i, strings.Repeat("x", 400))
	}
	in := b.String()
	out, stderr, code := execute(t, in, nil, "guard", "--release", "app", "--offline")
	if code != 0 || out != in {
		t.Fatalf("exit %d, %d of %d bytes back: %s", code, len(out), len(in), stderr)
	}
}
