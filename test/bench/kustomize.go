package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// kustomizeDocs is the stream size of the comparison with kustomize.
const kustomizeDocs = 5000

// kustomizeComparison compares the guard with the other post-processing step an operator already accepts in a
// Helm pipeline: `kustomize build` of a no-op kustomization (`resources: [stream.yaml]`) over the same 5,000
// documents. kustomize's time grows faster than linearly with the document count (every appended resource is
// checked against all before it), so it runs fewer times than the guard (--kustomize-runs).
func kustomizeComparison(ctx context.Context, env *benchEnv, r *report) error {
	s := r.section(fmt.Sprintf("Guard, offline, against `kustomize build` at %d documents", kustomizeDocs))
	if env.kustomize == "" {
		return fmt.Errorf("no kustomize binary (--kustomize; `make bench` builds it)")
	}
	dir := filepath.Join(env.dir, "kustomize")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	in := stream(kustomizeDocs)
	file := filepath.Join(dir, "stream.yaml")
	if err := os.WriteFile(file, in, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte("resources:\n- stream.yaml\n"), 0o644); err != nil {
		return err
	}
	s.para("A kustomization that changes nothing, over the stream of the section above (`stream-%d.yaml`): what a Helm pipeline that post-renders through kustomize pays at the least. kustomize %s; medians of %d runs (kustomize) and %d runs (guard).",
		kustomizeDocs, env.kustomizeVersion, env.kustomizeRuns, env.runs)
	s.command("mkdir k && cp stream-%d.yaml k/stream.yaml && printf 'resources:\\n- stream.yaml\\n' > k/kustomization.yaml", kustomizeDocs)
	s.command("kustomize build k > /dev/null     # %s, built by make bench into the tool cache", filepath.Base(env.kustomize))
	s.command("bin/rotate-key guard --release=app --offline < stream-%d.yaml > /dev/null", kustomizeDocs)
	kctx, cancel := context.WithTimeout(ctx, time.Duration(env.kustomizeRuns)*5*time.Minute)
	defer cancel()
	kz, err := env.repeat(kctx, env.kustomizeRuns, proc{name: env.kustomize, args: []string{"build", dir}})
	if err != nil {
		return err
	}
	guard, err := env.repeat(ctx, env.runs, proc{name: env.binary, args: []string{"guard", "--release=app", "--offline"}, stdin: in})
	if err != nil {
		return err
	}
	s.table("documents", "kustomize build", "kustomize peak RSS", "guard --offline", "guard peak RSS", "guard / kustomize")
	s.row(fmt.Sprint(kustomizeDocs), dur(kz.median), mb(kz.maxRSS), dur(guard.median), mb(guard.maxRSS), ratio(guard.median, kz.median))
	docs := bytes.Count(append([]byte("\n"), kz.out...), []byte("\n---\n")) + 1
	s.note("kustomize's time grows faster than linearly with the document count: appending each resource checks it against every resource before it (resmap.Append → GetMatchingResourcesByCurrentId, seen in a CPU profile), so the ratio at %d documents says little about small releases.", kustomizeDocs)
	r.must(docs == kustomizeDocs, "kustomize accepted the %d-document stream (it wrote %d documents)", kustomizeDocs, docs)
	r.must(bytes.Equal(guard.out, in), "guard output byte-identical to its input, %d documents (kustomize comparison)", kustomizeDocs)
	r.target(fmt.Sprintf("guard ≤ 0.3 × `kustomize build` at %d documents", kustomizeDocs), ratio(guard.median, kz.median), float64(guard.median) <= 0.3*float64(kz.median))
	return nil
}
