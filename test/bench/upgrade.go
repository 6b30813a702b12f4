package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// upgradeConfigMaps is how many ConfigMaps the upgrade chart renders besides the keyring Secret (200 resources).
const upgradeConfigMaps = 199

// writeUpgradeChart writes the chart of the upgrade comparison into dir: 199 ConfigMaps and the keyring Secret
// (keep policy, the stream's fixture key). The value `round` lands in one ConfigMap only, so each upgrade changes
// one object, as a typical upgrade (a new image tag) does: the guard's share of the upgrade is at its largest.
func writeUpgradeChart(dir string) error {
	files := map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: bench-200\nversion: 0.1.0\ndescription: make bench's 200-resource release (test/bench/upgrade.go)\n",
		"values.yaml": "round: 0\n",
		"templates/configmaps.yaml": fmt.Sprintf(`{{- range $i := until %d }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $.Release.Name }}-settings-{{ $i }}
  labels:
    app.kubernetes.io/instance: {{ $.Release.Name }}
    app.kubernetes.io/name: settings-{{ $i }}
data:
  index: {{ $i | quote }}
  endpoint: "https://service-{{ $i }}.example.com/api/v1"
  timeout: "30s"
  {{- if eq $i 0 }}
  round: {{ $.Values.round | quote }}
  {{- end }}
{{- end }}
`, upgradeConfigMaps),
		"templates/keyring.yaml": fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-requests-proxy-admin
  annotations:
    helm.sh/resource-policy: keep
data:
  key.v1: %s
  active: %s
`, fixtureKey, fixtureActive),
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// upgrades times `helm upgrade` of a 200-resource release without and with the guard as a post-renderer, on Helm 3
// (rotate-key-guard found on PATH) and Helm 4 (the rotate-key-guard plugin), in alternating pairs so that drift
// (etcd growing, caches warming) hits both sides alike. Each upgrade sets a new `round`, so each really changes
// something. No --wait: ConfigMaps have nothing to wait for.
func upgrades(ctx context.Context, env *clusterEnv, r *report) error {
	chart := filepath.Join(env.dir, "bench-200")
	if err := writeUpgradeChart(chart); err != nil {
		return err
	}
	s := r.section("`helm upgrade` of a 200-resource release, without and with the guard")
	s.para("The chart (`go run ./test/bench --inputs DIR` writes it to DIR/bench-200) renders %d ConfigMaps and the keyring Secret (keep policy); `round` changes one ConfigMap per upgrade. Installed once per Helm, in its own namespace; then %d alternating pairs (without, with, without, with, …) of upgrades, each with the next `round`; the last column is the median of (guarded − the unguarded upgrade just before it), less sensitive to drift than the difference of the medians. Helm 3 finds `rotate-key-guard` on PATH (bin/rotate-key-guard, a symlink to rotate-key); Helm 4 runs the post-renderer plugin that `helm rotate-key install-guard` installs.",
		upgradeConfigMaps, env.pairs)
	s.command("helm install app bench-200 -n $NS")
	s.command("helm upgrade app bench-200 -n $NS --set round=$N                      # without")
	s.command("PATH=$PWD/bin:$PATH helm upgrade app bench-200 -n $NS --set round=$N \\")
	s.command("  --post-renderer rotate-key-guard --post-renderer-args --release=app --post-renderer-args --namespace=$NS   # with")
	s.command("helm rotate-key install-guard    # Helm 4 only, once: the post-renderer plugin rotate-key-guard")
	s.table("Helm", "upgrades", "median without", "median with", "with / without", "with − without", "median of the pairs' differences")
	for _, h := range env.helms {
		without, with, err := upgradePairs(ctx, env, h, chart, r)
		if err != nil {
			return err
		}
		mw, mg := median(without), median(with)
		diffs := make([]time.Duration, len(with))
		for i := range with {
			diffs[i] = with[i] - without[i] // each guarded upgrade against the unguarded one just before it
		}
		q := fmt.Sprintf("%.3f×", float64(mg)/float64(mw)) // three digits: the target sits at 1.10
		s.row(fmt.Sprintf("%d (%s)", h.Major, env.cluster.Tools.Versions[fmt.Sprintf("HELM%d_VERSION", h.Major)]), fmt.Sprintf("%d + %d", len(without), len(with)),
			dur(mw), dur(mg), q, dur(mg-mw), dur(median(diffs)))
		r.target(fmt.Sprintf("Helm %d: `helm upgrade` (200 resources) with the guard ≤ 1.10 × without", h.Major), q, float64(mg) <= 1.10*float64(mw))
	}
	return nil
}

// upgradePairs installs the chart with h in a new namespace and returns the wall times of the upgrades without and
// with the guard. A last upgrade whose guard is given an unknown flag must fail: the proof that Helm really ran the
// guard in the "with" runs.
func upgradePairs(ctx context.Context, env *clusterEnv, h *testcluster.Helm, chart string, r *report) (without, with []time.Duration, err error) {
	ns, err := env.namespace(ctx, fmt.Sprintf("upgrade-h%d", h.Major))
	if err != nil {
		return nil, nil, err
	}
	if _, out, err := helmRun(ctx, h, "-n", ns, "install", "app", chart); err != nil {
		return nil, nil, fmt.Errorf("%w\n%s", err, out)
	}
	guard := []string{"--post-renderer", "rotate-key-guard", "--post-renderer-args", "--release=app", "--post-renderer-args", "--namespace=" + ns}
	for i := 0; i < 2*env.pairs; i++ {
		args := []string{"-n", ns, "upgrade", "app", chart, "--set", fmt.Sprintf("round=%d", i+1)}
		guarded := i%2 == 1
		if guarded {
			args = append(args, guard...)
		}
		took, out, err := helmRun(ctx, h, args...)
		if err != nil {
			return nil, nil, fmt.Errorf("%w\n%s", err, tailString(out, 600))
		}
		if guarded {
			with = append(with, took)
		} else {
			without = append(without, took)
		}
		env.logf("helm%d upgrade %d of %d (guard %v): %s", h.Major, i+1, 2*env.pairs, guarded, took.Round(time.Millisecond))
	}
	_, out, err := helmRun(ctx, h, "-n", ns, "upgrade", "app", chart, "--set", "round=control", "--post-renderer", "rotate-key-guard", "--post-renderer-args", "--no-such-guard-flag")
	r.must(err != nil && (h.Major == 4 || strings.Contains(out, "--no-such-guard-flag")),
		"Helm %d ran the guard in the guarded upgrades (an upgrade whose guard gets an unknown flag fails)", h.Major)
	return without, with, nil
}
