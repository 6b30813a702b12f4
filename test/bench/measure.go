package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// proc is one process the bench times: a whole process, start-up included, as an operator or Helm runs it.
type proc struct {
	name  string
	args  []string
	stdin []byte
	// env, when set, replaces the environment (e.g. KUBECONFIG for the online guard); nil inherits the bench's.
	env []string
}

// sample is one run of a proc: wall time, peak RSS and what it wrote on stdout.
type sample struct {
	wall   time.Duration
	maxRSS int64 // bytes
	out    []byte
}

// measure runs p once through the probe (test/bench/probe: why it exists is said there), which reports p's wall
// time and peak RSS. A non-zero exit is an error carrying the end of stderr (never key material: the bench runs
// nothing that prints it).
func (e *benchEnv) measure(ctx context.Context, p proc) (sample, error) {
	figures, w, err := os.Pipe()
	if err != nil {
		return sample{}, err
	}
	defer figures.Close()
	cmd := exec.CommandContext(ctx, e.probe, append([]string{p.name}, p.args...)...)
	cmd.Stdin = bytes.NewReader(p.stdin)
	cmd.Env = p.env
	cmd.ExtraFiles = []*os.File{w}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Start()
	w.Close()
	if err != nil {
		return sample{}, err
	}
	reported, _ := io.ReadAll(figures)
	if err := cmd.Wait(); err != nil {
		return sample{}, fmt.Errorf("%s %s: %w: %s", p.name, strings.Join(p.args, " "), err, tailString(errOut.String(), 600))
	}
	var wall, rssKB int64
	if _, err := fmt.Sscan(string(reported), &wall, &rssKB); err != nil {
		return sample{}, fmt.Errorf("the probe reported %q: %w", reported, err)
	}
	return sample{wall: time.Duration(wall), maxRSS: rssKB * 1024, out: out.Bytes()}, nil
}

// buildProbe builds test/bench/probe into dir and returns its path.
func buildProbe(root, dir string) (string, error) {
	path := filepath.Join(dir, "probe")
	cmd := exec.Command("go", "build", "-o", path, "./test/bench/probe")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the probe: %w\n%s", err, out)
	}
	return path, nil
}

// stats is what the report shows of repeated runs: the median wall time, the largest peak RSS, and the output of
// the last run (for the byte-identical checks).
type stats struct {
	median time.Duration
	maxRSS int64
	out    []byte
}

// repeat runs p runs times.
func (e *benchEnv) repeat(ctx context.Context, runs int, p proc) (stats, error) {
	var walls []time.Duration
	var st stats
	for i := 0; i < runs; i++ {
		s, err := e.measure(ctx, p)
		if err != nil {
			return stats{}, err
		}
		walls = append(walls, s.wall)
		st.maxRSS, st.out = max(st.maxRSS, s.maxRSS), s.out
	}
	st.median = median(walls)
	return st, nil
}

// median of a non-empty list (the upper one of the middle two for an even count).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// withEnv returns the bench's environment with the given variables set (replacing any of the same name).
func withEnv(kv ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		name, _, _ := strings.Cut(e, "=")
		replaced := false
		for _, n := range kv {
			if strings.HasPrefix(n, name+"=") {
				replaced = true
			}
		}
		if !replaced {
			env = append(env, e)
		}
	}
	return append(env, kv...)
}

func tailString(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
