package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// pkgInit is one package's initialisation in a GODEBUG=inittrace=1 trace.
type pkgInit struct {
	pkg   string
	clock time.Duration
}

// initProfile runs `binary version` with GODEBUG=inittrace=1 runs times and returns, from the run whose total is
// the median, the total package-initialisation time and the packages that took longest. This is the start-up
// profile: package init runs before main, so a CPU profile taken in main never sees it.
func initProfile(ctx context.Context, binary string, runs, top int) (time.Duration, []pkgInit, error) {
	type trace struct {
		total time.Duration
		pkgs  []pkgInit
	}
	var traces []trace
	for i := 0; i < runs; i++ {
		cmd := exec.CommandContext(ctx, binary, "version")
		cmd.Env = withEnv("GODEBUG=inittrace=1")
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		if err := cmd.Run(); err != nil {
			return 0, nil, fmt.Errorf("%s version: %w", binary, err)
		}
		var t trace
		for _, line := range strings.Split(errOut.String(), "\n") {
			// init PACKAGE @0.12 ms, 0.34 ms clock, 1234 bytes, 5 allocs
			f := strings.Fields(line)
			if len(f) < 7 || f[0] != "init" || f[6] != "clock," {
				continue
			}
			ms, err := strconv.ParseFloat(f[4], 64)
			if err != nil {
				continue
			}
			d := time.Duration(ms * float64(time.Millisecond))
			t.total += d
			t.pkgs = append(t.pkgs, pkgInit{pkg: f[1], clock: d})
		}
		traces = append(traces, t)
	}
	sort.Slice(traces, func(i, j int) bool { return traces[i].total < traces[j].total })
	m := traces[len(traces)/2]
	sort.Slice(m.pkgs, func(i, j int) bool { return m.pkgs[i].clock > m.pkgs[j].clock })
	return m.total, m.pkgs[:min(top, len(m.pkgs))], nil
}

// goFloor builds the smallest Go program that does the guard's job minus the guard — copy stdin to stdout — with
// the flags of make build: what any Go post-renderer costs at least, to set against cat.
func goFloor(dir string) (string, error) {
	src := filepath.Join(dir, "floor", "main.go")
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		return "", err
	}
	prog := "package main\n\nimport (\n\t\"io\"\n\t\"os\"\n)\n\nfunc main() { _, _ = io.Copy(os.Stdout, os.Stdin) }\n"
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "floor", "copy")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, src)
	cmd.Dir = filepath.Dir(src)
	cmd.Env = withEnv("GO111MODULE=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the Go floor program: %w\n%s", err, out)
	}
	return bin, nil
}
