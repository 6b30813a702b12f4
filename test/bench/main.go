// Command bench measures rotate-key against the floor and the tools an operator would use instead, and writes
// docs/benchmarks.md (`make bench`). This first part covers what needs no cluster: the guard on synthetic streams
// (offline) against `cat`, its peak RSS against the stream size, start-up time, and the binary size. Must-hold
// conditions fail the run; targets are reported as met or not.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	binary := flag.String("binary", "bin/rotate-key", "the rotate-key binary")
	out := flag.String("out", "docs/benchmarks.md", "where the report is written")
	runs := flag.Int("runs", 15, "runs per measurement (the median is reported)")
	flag.Parse()
	if err := run(*binary, *out, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// stream builds n documents of mixed kinds with one keyring Secret in the middle.
func stream(n int) []byte {
	var b bytes.Buffer
	kinds := []string{"ConfigMap", "Service", "Deployment", "ServiceAccount", "Role"}
	for i := 0; i < n; i++ {
		if i == n/2 {
			b.WriteString("---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: app-requests-proxy-admin\n  annotations:\n    helm.sh/resource-policy: keep\ndata:\n  key.v1: YUIzZEU1Z0g3aks5bU4xcFEzc1Q1dlg3ekE5Y0UxZ0kza001b1E3c1U5d1kxYUMzZUc1aUs3bU85cVMxdVcz\n  active: djE=\n")
			continue
		}
		kind := kinds[i%len(kinds)]
		fmt.Fprintf(&b, "---\n# Source: app/templates/%s-%d.yaml\napiVersion: v1\nkind: %s\nmetadata:\n  name: obj-%d\n  labels:\n    app.kubernetes.io/instance: app\n    app.kubernetes.io/name: obj-%d\n  annotations:\n    postrenderer.helm.sh/postrender-filename: app/templates/%s-%d.yaml\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n        - name: c\n          image: registry.example.com/app:1.0.%d\n          env:\n            - {name: A, value: \"%d\"}\n", strings.ToLower(kind), i, kind, i, i, strings.ToLower(kind), i, i, i)
	}
	return b.Bytes()
}

type sample struct {
	wall   time.Duration
	maxRSS int64 // bytes
	out    []byte
}

func measure(stdin []byte, name string, args ...string) (sample, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout = &out
	began := time.Now()
	if err := cmd.Run(); err != nil {
		return sample{}, fmt.Errorf("%s %v: %w", name, args, err)
	}
	s := sample{wall: time.Since(began), out: out.Bytes()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.maxRSS = ru.Maxrss * 1024 // kilobytes on Linux
	}
	return s, nil
}

func median(stdin []byte, runs int, name string, args ...string) (time.Duration, int64, []byte, error) {
	var walls []time.Duration
	var rss int64
	var out []byte
	for i := 0; i < runs; i++ {
		s, err := measure(stdin, name, args...)
		if err != nil {
			return 0, 0, nil, err
		}
		walls = append(walls, s.wall)
		rss, out = max(rss, s.maxRSS), s.out
	}
	sort.Slice(walls, func(i, j int) bool { return walls[i] < walls[j] })
	return walls[len(walls)/2], rss, out, nil
}

func run(binary, outPath string, runs int) error {
	abs, err := filepath.Abs(binary)
	if err != nil {
		return err
	}
	info, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("%w (run make build first)", err)
	}
	var report strings.Builder
	failed := 0
	must := func(ok bool, format string, args ...any) {
		mark := "holds"
		if !ok {
			mark, failed = "FAILS", failed+1
		}
		fmt.Fprintf(&report, "| %s | %s |\n", fmt.Sprintf(format, args...), mark)
	}
	fmt.Fprintf(&report, "# Benchmarks\n\nWritten by `make bench` (test/bench). Machine: %s/%s, %d CPUs, %s; binary %s (%.1f MB). Medians of %d runs,\nwhole processes (start-up included), taken on %s.\n\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), binary, float64(info.Size())/1e6, runs, time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&report, "## Guard, offline, against `cat` on the same stream\n\n| documents | bytes | cat | guard | guard / cat | guard peak RSS | RSS bound (3 × stream + 40 MB) |\n|---|---|---|---|---|---|---|\n")
	var mustHold []string
	ratio100 := 0.0
	for _, n := range []int{100, 1000, 5000} {
		in := stream(n)
		catWall, _, catOut, err := median(in, runs, "cat")
		if err != nil {
			return err
		}
		guardWall, rss, guardOut, err := median(in, runs, abs, "guard", "--release=app", "--offline")
		if err != nil {
			return err
		}
		bound := int64(3*len(in)) + 40<<20
		if n == 100 {
			ratio100 = float64(guardWall) / float64(catWall)
		}
		fmt.Fprintf(&report, "| %d | %d | %s | %s | %.2f× | %.1f MB | %.1f MB |\n", n, len(in), catWall.Round(10*time.Microsecond), guardWall.Round(10*time.Microsecond),
			float64(guardWall)/float64(catWall), float64(rss)/1e6, float64(bound)/1e6)
		mustHold = append(mustHold, fmt.Sprintf("%d|%v|%v|%d|%d", n, bytes.Equal(guardOut, in) && bytes.Equal(catOut, in), rss <= bound, rss, bound))
	}
	fmt.Fprintf(&report, "\n## Start-up\n\n| command | median |\n|---|---|\n")
	help, _, _, err := median(nil, runs, abs, "--help")
	if err != nil {
		return err
	}
	one, _, _, err := median(stream(1), runs, abs, "guard", "--release=app", "--offline")
	if err != nil {
		return err
	}
	fmt.Fprintf(&report, "| `rotate-key --help` | %s |\n| `rotate-key guard --offline` (one document) | %s |\n", help.Round(10*time.Microsecond), one.Round(10*time.Microsecond))
	target := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT MET — profile and plan pending (issue 7)"
	}
	fmt.Fprintf(&report, "\n## Targets\n\n| target | measured | |\n|---|---|---|\n")
	fmt.Fprintf(&report, "| guard ≤ 1.5 × cat at 100 documents | %.2f× | %s |\n", ratio100, target(ratio100 <= 1.5))
	fmt.Fprintf(&report, "| `--help` < 50 ms | %s | %s |\n", help.Round(10*time.Microsecond), target(help < 50*time.Millisecond))
	fmt.Fprintf(&report, "| `guard --offline`, one document, < 50 ms | %s | %s |\n", one.Round(10*time.Microsecond), target(one < 50*time.Millisecond))
	fmt.Fprintf(&report, "\n## Must hold\n\n| condition | |\n|---|---|\n")
	for _, m := range mustHold {
		var n int
		var identical, bounded bool
		var rss, bound int64
		fmt.Sscanf(strings.ReplaceAll(m, "|", " "), "%d %t %t %d %d", &n, &identical, &bounded, &rss, &bound)
		must(identical, "guard output byte-identical to its input, %d documents", n)
		must(bounded, "guard peak RSS %.1f MB ≤ 3 × stream + 40 MB (%.1f MB), %d documents", float64(rss)/1e6, float64(bound)/1e6, n)
	}
	fmt.Fprintf(&report, "\n## Not measured yet (issue 7)\n\n`kubectl kustomize` at 5,000 documents, online mode, `helm upgrade` of a 200-resource release with and without\nthe guard, rotation overhead, API request budgets (counting transport), and `status --all-namespaces` over 200\nreleases (TestStatusAllNamespaces lists 200 keyrings; its time is logged there, not asserted).\n")
	if err := os.WriteFile(outPath, []byte(report.String()), 0o644); err != nil {
		return err
	}
	fmt.Print(report.String())
	if failed > 0 {
		return fmt.Errorf("%d must-hold conditions failed", failed)
	}
	return nil
}
