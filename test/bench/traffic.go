package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
	"github.com/tracebloc/helm-rotate-key/test/traffic"
)

// trafficDuringRotation measures real token traffic through a full local rotation on Helm 4: the example chart's
// signer and verifier run the token app on the runner node (signer keys from env, verifier keys from a Secret
// volume), the traffic driver issues tokens at a fixed rate and presents each every 15 s (and just before and after it expires). It
// reports the tokens per second sustained, the promise (no unexpired token rejected) and the verifier's answer
// time before the rotation and during each consumer rollout.
func trafficDuringRotation(ctx context.Context, env *clusterEnv, r *report) error {
	h := env.helms[len(env.helms)-1]
	ns, err := env.namespace(ctx, "traffic")
	if err != nil {
		return err
	}
	chart := filepath.Join(env.cluster.Root, "charts", "example-app")
	install := append(append([]string{"-n", ns, "install", "app", chart, "--set", fmt.Sprintf("tokenTtlSeconds=%d", rotationTTL), "--wait", "--timeout", "2m"},
		append(testcluster.RunnerValues(), testcluster.ShortMarginValues()...)...), testcluster.TokenApp{SignerKeys: "env", VerifierKeys: "volume"}.Values()...)
	if _, out, err := helmRun(ctx, h, install...); err != nil {
		return fmt.Errorf("%w\n%s", err, tailString(out, 600))
	}
	selector := func(app string) map[string]string {
		return map[string]string{"app.kubernetes.io/instance": "app", "app.kubernetes.io/name": app}
	}
	for name, app := range map[string]string{"traffic-signer": "jobs-manager", "traffic-verifier": "requests-proxy"} {
		if err := env.cluster.Expose(ctx, ns, name, selector(app)); err != nil {
			return err
		}
	}
	rec, err := watchRollouts(ctx, env, ns)
	if err != nil {
		return err
	}
	driver := traffic.Driver{Client: env.cluster.Client, Namespace: ns, Signer: "traffic-signer", Verifier: "traffic-verifier",
		Rate: 40, PresentEvery: 15 * time.Second, Skew: 2 * time.Second, Address: env.cluster.LocalAddress}
	run, err := driver.Start(ctx)
	if err != nil {
		return err
	}
	time.Sleep(20 * time.Second) // a baseline before the first rollout
	rotationStart := time.Now()
	if code, out := runCode(ctx, h, "-n", ns, "rotate-key", "app", "--yes", "--local"); code != 3 {
		run.Stop()
		return fmt.Errorf("first run: exit %d\n%s", code, tailString(out, 600))
	}
	retireAfter, err := retireAfterOf(ctx, h, ns)
	if err != nil {
		run.Stop()
		return err
	}
	time.Sleep(time.Until(retireAfter) + time.Second)
	if code, out := runCode(ctx, h, "-n", ns, "rotate-key", "app", "--yes", "--local"); code != 0 {
		run.Stop()
		return fmt.Errorf("second run: exit %d\n%s", code, tailString(out, 600))
	}
	rotationEnd := time.Now()
	rep := run.Stop()
	spans, _ := rec.within(rotationStart, rotationEnd)

	s := r.section("Token traffic during a rotation")
	s.para("Real tokens through a full local rotation (Helm %d, tokenTtlSeconds=%d): the example chart's jobs-manager and requests-proxy run the token app (test/tokenapp) on the runner node, 2 replicas each; the signer reads its keys from env at start, the verifier from its Secret volume. The traffic driver (test/traffic) takes %g tokens/s from the signers' ready endpoints and presents each token to the verifiers' every %s until it expires and once after. Latency is the verifier's answer time seen by the driver (HTTP on loopback, keep-alive), over the presentations made in the window; \"added\" is the p99 in a rollout minus the p99 of the %s before the rotation.", h.Major, rotationTTL, driver.Rate, driver.PresentEvery, rotationStart.Sub(rep.Records[0].At).Round(time.Second))
	s.command("helm install app charts/example-app -n $NS --set tokenTtlSeconds=%d --wait \\", rotationTTL)
	s.command("  %s \\", testcluster.ShellWords(testcluster.RunnerValues()))
	s.command("  %s", testcluster.ShellWords(testcluster.TokenApp{SignerKeys: "env", VerifierKeys: "volume"}.Values()))
	s.command("helm rotate-key app --yes --local -n $NS; sleep %d; helm rotate-key app --yes --local -n $NS", rotationTTL)
	duringRotation := rep.Where(func(p traffic.Presentation) bool {
		return !p.IssuedAt.Before(rotationStart.Truncate(time.Second)) && p.IssuedAt.Before(rotationEnd)
	})
	tokens := map[string]bool{}
	for _, p := range duringRotation {
		tokens[p.Issuer+"/"+p.ID] = true
	}
	s.table("measure", "value")
	s.row("tokens issued (whole run)", fmt.Sprint(rep.Issued))
	s.row("tokens issued and verified during the rotation", fmt.Sprintf("%d in %s = **%.1f tokens/s** sustained", len(tokens), dur(rotationEnd.Sub(rotationStart)), float64(len(tokens))/rotationEnd.Sub(rotationStart).Seconds()))
	s.row("verifications (whole run)", fmt.Sprintf("%d (%.0f/s)", rep.Presentations, float64(rep.Presentations)/rep.Duration.Seconds()))
	s.row("unexpired tokens rejected", fmt.Sprint(rep.RejectedUnexpired))
	s.row("expired tokens accepted", fmt.Sprint(rep.AcceptedExpired))
	s.row("requests nobody answered", fmt.Sprintf("%d issue, %d verify", rep.IssueErrors, rep.Unreachable))
	if rep.RejectedUnexpired > 0 {
		s.note("Unexpired tokens rejected (first 10):\n\n```text\n%s```", rep.Rejections(10))
	}
	first := rep.Records[0].At
	baseP50, baseP99 := rep.Latency(0.5, first, rotationStart), rep.Latency(0.99, first, rotationStart)
	lat := r.section("Verifier latency during each rollout")
	lat.para("The verifier's answer time (p50 / p99) over the presentations made before the rotation and during each consumer rollout the bench saw (its own informers, as in the rotation overhead section).")
	lat.table("window", "Deployment", "duration", "presentations", "p50", "p99", "added p99")
	count := func(from, to time.Time) int {
		return len(rep.Where(func(p traffic.Presentation) bool { return !p.At.Before(from) && p.At.Before(to) }))
	}
	lat.row("before the rotation", "—", dur(rotationStart.Sub(first)), fmt.Sprint(count(first, rotationStart)), dur(baseP50), dur(baseP99), "—")
	worst := time.Duration(0)
	for _, sp := range spans {
		_, phase, _ := strings.Cut(sp.value, "/")
		p99 := rep.Latency(0.99, sp.start, sp.end)
		worst = max(worst, p99-baseP99)
		lat.row("rollout "+phase, sp.deployment, dur(sp.end.Sub(sp.start)), fmt.Sprint(count(sp.start, sp.end)), dur(rep.Latency(0.5, sp.start, sp.end)), dur(p99), dur(p99-baseP99))
	}
	r.must(rep.RejectedUnexpired == 0 && rep.AcceptedExpired == 0, "no unexpired token rejected (%d) and no expired one accepted (%d) during the rotation", rep.RejectedUnexpired, rep.AcceptedExpired)
	r.must(len(spans) == 6, "the bench saw the 6 consumer rollouts of a rotation (%d)", len(spans))
	r.target("tokens/s sustained during the rotation ≥ 35 (of 40 offered)", fmt.Sprintf("%.1f", float64(len(tokens))/rotationEnd.Sub(rotationStart).Seconds()), float64(len(tokens))/rotationEnd.Sub(rotationStart).Seconds() >= 35)
	r.target("verifier p99 added during a rollout < 50 ms", dur(worst), worst < 50*time.Millisecond)
	return nil
}

// runCode runs a helm command and returns its exit code and output.
func runCode(ctx context.Context, h *testcluster.Helm, args ...string) (int, string) {
	_, out, err := helmRun(ctx, h, args...)
	return exitCodeOf(err), out
}

func exitCodeOf(err error) int {
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exitErr):
		return exitErr.ExitCode()
	}
	return -1
}
