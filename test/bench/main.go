// Command bench measures rotate-key against the floor and the tools an operator would use instead, and writes
// docs/benchmarks.md (`make bench`; not part of `make test`).
//
// A run has two halves. The offline stages need no cluster: the guard on synthetic streams against `cat` and
// `kustomize build`, its peak RSS, start-up. The cluster stages run against the cluster-in-a-box
// (internal/testcluster, started once, exactly as the e2e tests start it, and stopped on exit or on a signal): the
// guard online, `helm upgrade` with and without the guard on Helm 3 and Helm 4, `status --all-namespaces` over a
// fleet, and the overhead of a full rotation.
//
// Every stage appends to one report (report.go): a section with the commands that reproduce its figures, targets
// (reported as met or NOT MET, never failing the run) and must-hold conditions (any failure makes the run exit
// non-zero; so does a stage that cannot finish). Adding a measurement is one file with a stage function plus one
// line in offlineStages or clusterStages below. An interrupted run (SIGINT/SIGTERM) stops the cluster and leaves
// docs/benchmarks.md as it was.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// offlineStage is a measurement that needs no cluster. It runs before the cluster starts, so an idle control
// plane adds no noise to it.
type offlineStage struct {
	name string
	run  func(ctx context.Context, env *benchEnv, r *report) error
}

// clusterStage is a measurement against the cluster-in-a-box; env holds the cluster and both Helms.
type clusterStage struct {
	name string
	run  func(ctx context.Context, env *clusterEnv, r *report) error
}

// offlineStages and clusterStages run in this order; the report keeps it.
var offlineStages = []offlineStage{
	{"guard offline vs cat", offlineGuard},
	{"start-up", startup},
	{"guard vs kustomize", kustomizeComparison},
}

var clusterStages = []clusterStage{
	{"guard online", onlineGuard},
	{"helm upgrade with and without the guard", upgrades},
	{"status --all-namespaces", fleet},
	{"rotation overhead", rotationOverhead},
	{"token traffic during a rotation", trafficDuringRotation},
	{"API request budgets", apiBudgets},
}

// notMeasured is what issue 7 asks for that no stage measures yet (none now; the report shows the section when a
// stage is removed or added unfinished).
var notMeasured = []string{}

// stageTimeout bounds one stage; a stage that hangs fails the run instead of holding it forever.
const stageTimeout = 8 * time.Minute

// benchEnv is what every stage gets: the binary under test, the kustomize binary, how many times to run each
// measurement, and a work folder removed at the end.
type benchEnv struct {
	binary           string // absolute path of bin/rotate-key
	kustomize        string
	kustomizeVersion string
	runs             int // runs per process measurement (median reported)
	kustomizeRuns    int
	pairs            int // (without, with) pairs of helm upgrades per Helm
	fleetRuns        int
	dir              string
	probe            string // test/bench/probe, built into dir: every timed process runs under it
	logf             func(format string, args ...any)
}

// options are the command line.
type options struct {
	binary, kustomize, out string
	runs, kustomizeRuns    int
	pairs, fleetRuns       int
	noCluster              bool
	only                   map[string]bool // stage names; empty: every stage
}

func main() {
	var o options
	flag.StringVar(&o.binary, "binary", "bin/rotate-key", "the rotate-key binary")
	flag.StringVar(&o.out, "out", "docs/benchmarks.md", "where the report is written")
	flag.IntVar(&o.runs, "runs", 15, "runs per process measurement (the median is reported)")
	flag.StringVar(&o.kustomize, "kustomize", "", "the kustomize binary (default: kustomize-$KUSTOMIZE_VERSION in the tool cache)")
	flag.IntVar(&o.kustomizeRuns, "kustomize-runs", 3, "runs of kustomize build (it takes seconds to minutes at 5,000 documents)")
	flag.IntVar(&o.pairs, "pairs", 5, "alternating (without, with) guard pairs of helm upgrade per Helm")
	flag.IntVar(&o.fleetRuns, "fleet-runs", 5, "runs of status --all-namespaces")
	flag.BoolVar(&o.noCluster, "no-cluster", false, "run only the offline stages (the report then lacks the cluster sections)")
	only := flag.String("only", "", "run only these stages (comma-separated names, as printed on stderr); for working on one stage")
	inputs := flag.String("inputs", "", "write the synthetic inputs (stream-N.yaml, the chart bench-200/) into this folder and exit")
	flag.Parse()
	if *inputs != "" {
		if err := writeInputs(*inputs); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	o.only = map[string]bool{}
	for _, name := range strings.Split(*only, ",") {
		if name = strings.TrimSpace(name); name != "" {
			o.only[name] = true
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// selected reports whether the stage runs (--only).
func (o options) selected(name string) bool { return len(o.only) == 0 || o.only[name] }

func run(ctx context.Context, o options) error {
	began := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "bench %s: %s\n", time.Since(began).Round(time.Second), fmt.Sprintf(format, args...))
	}
	abs, err := filepath.Abs(o.binary)
	if err != nil {
		return err
	}
	info, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("%w (run make build first)", err)
	}
	root, err := testcluster.RepoRoot()
	if err != nil {
		return err
	}
	shown := abs // the binary as the report names it: relative to the checkout when inside it
	if rel, err := filepath.Rel(root, abs); err == nil && !strings.HasPrefix(rel, "..") {
		shown = rel
	}
	tools, toolsErr := testcluster.FindTools(root) // Dir and Versions are set even when a cluster tool is missing
	kustomize := o.kustomize
	if kustomize == "" {
		kustomize = filepath.Join(tools.Dir, "kustomize-"+tools.Versions["KUSTOMIZE_VERSION"])
	}
	if _, err := os.Stat(kustomize); err != nil {
		logf("no kustomize at %s (make bench builds it): the kustomize comparison fails", kustomize)
		kustomize = ""
	}
	dir, err := os.MkdirTemp("", "rotate-key-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	probe, err := buildProbe(root, dir)
	if err != nil {
		return err
	}
	env := &benchEnv{probe: probe, binary: abs, kustomize: kustomize, kustomizeVersion: tools.Versions["KUSTOMIZE_VERSION"], runs: o.runs,
		kustomizeRuns: o.kustomizeRuns, pairs: o.pairs, fleetRuns: o.fleetRuns, dir: dir, logf: logf}
	r := &report{notMeasured: notMeasured}

	for _, s := range offlineStages {
		if o.selected(s.name) {
			runStage(ctx, r, logf, s.name, func(ctx context.Context) error { return s.run(ctx, env, r) })
		}
	}
	var selected []clusterStage
	for _, s := range clusterStages {
		if o.selected(s.name) {
			selected = append(selected, s)
		}
	}
	clusterLine := "The cluster sections were not run (--no-cluster or --only)."
	switch {
	case o.noCluster || len(selected) == 0:
	case toolsErr != nil:
		r.must(false, "the cluster-in-a-box started (%v)", toolsErr)
	default:
		clusterLine = withClusterEnv(ctx, env, tools, r, func(cenv *clusterEnv) {
			for _, s := range selected {
				runStage(ctx, r, logf, s.name, func(ctx context.Context) error { return s.run(ctx, cenv, r) })
			}
		})
	}

	header := fmt.Sprintf("Written by `make bench` (test/bench) in %s. Machine: %s/%s, %d CPUs, %s; binary %s (%.1f MB), as `make build` makes it.\nProcess figures are medians of whole processes (start-up included), %d runs unless a section says otherwise; taken on %s.\n%s",
		time.Since(began).Round(time.Second), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), shown, float64(info.Size())/1e6, o.runs,
		time.Now().UTC().Format("2006-01-02"), clusterLine)
	doc := r.markdown(header)
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %s left as it was", o.out)
	}
	if err := os.WriteFile(o.out, []byte(doc), 0o644); err != nil {
		return err
	}
	fmt.Print(doc)
	logf("wrote %s", o.out)
	if n := r.failures(); n > 0 {
		return fmt.Errorf("%d must-hold conditions failed (see %s)", n, o.out)
	}
	return nil
}

// runStage runs one stage under stageTimeout. A stage that returns an error becomes a failed must-hold (the run
// goes on with the next stage, and exits non-zero at the end); the full error goes to stderr.
func runStage(ctx context.Context, r *report, logf func(string, ...any), name string, fn func(context.Context) error) {
	if ctx.Err() != nil {
		r.must(false, "stage %q ran (interrupted before it started)", name)
		return
	}
	logf("stage %q …", name)
	began := time.Now()
	sctx, cancel := context.WithTimeout(ctx, stageTimeout)
	err := fn(sctx)
	cancel()
	if errors.Is(sctx.Err(), context.DeadlineExceeded) && err != nil {
		err = fmt.Errorf("timed out after %s: %w", stageTimeout, err)
	}
	if err != nil {
		logf("stage %q FAILED after %s: %v", name, time.Since(began).Round(time.Millisecond), err)
		r.must(false, "stage %q ran to completion (%s)", name, tailString(err.Error(), 300))
		return
	}
	logf("stage %q done in %s", name, time.Since(began).Round(time.Millisecond))
}
