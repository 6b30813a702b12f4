package action

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/guard"
	"github.com/tracebloc/helm-rotate-key/internal/kube"
	"github.com/tracebloc/helm-rotate-key/internal/release"
)

// Guard is the post-renderer (`rotate-key guard`): it passes a render through only when it keeps the release's
// keyring Secret intact.
type Guard struct {
	// Namespace is the release's namespace as given (--namespace): Helm does not tell a post-renderer, so an empty
	// one is taken from the rendered objects, never from the kubeconfig (a wrong one reads "not found" and would
	// pass as a first install).
	Release, Secret, Namespace string
	// Offline checks only what the stream proves, without reading the live Secret.
	Offline bool
}

// Check refuses (exit 6) a render that would skip, drop or alter the keyring; nil lets it through.
func (a *Guard) Check(ctx context.Context, c *Config, in []byte) error {
	if len(in) == 0 {
		return exitcode.Withf(exitcode.Refused, "rotate-key guard refused release %q: the post-renderer received no manifests, and Helm would apply an empty release (deleting every object it manages); nothing was applied", a.Release)
	}
	secretName := a.Secret
	if secretName == "" {
		secretName = guard.SecretNameHint(in)
	}
	if secretName == "" {
		secretName = a.Release + DefaultSecretSuffix
	}
	namespace := a.Namespace
	if namespace == "" {
		namespace = guard.NamespaceHint(in)
	}
	if namespace == "" && !a.Offline {
		return exitcode.Withf(exitcode.Refused, "rotate-key guard refused release %q: it cannot tell the release's namespace (Helm does not pass it to a post-renderer, and the rendered objects name none), so it cannot read the live keyring to compare; nothing was applied. Add --post-renderer-args --namespace=NS, or run helm rotate-key upgrade, which passes it", a.Release)
	}
	refusal := func(findings []guard.Finding) *guard.Refusal {
		return &guard.Refusal{Release: a.Release, Namespace: namespace, Secret: secretName, Where: guard.PostRenderer, Findings: findings}
	}
	rendered, err := guard.FindSecret(in, namespace, secretName)
	if err != nil {
		return exitcode.Withf(exitcode.Refused, "rotate-key guard refused release %q: %v; nothing was applied", a.Release, err)
	}
	if a.Offline {
		if f := guard.CheckOffline(rendered); len(f) > 0 {
			return exitcode.With(exitcode.Refused, refusal(f))
		}
		return nil
	}
	v, err := judgeLive(ctx, c, namespace, secretName, func(live *guard.Live, now time.Time) []guard.Finding {
		return guard.Check(rendered, live, now)
	})
	if err != nil {
		return exitcode.Withf(exitcode.Refused, "rotate-key guard refused release %q: cannot read keyring Secret %s/%s to compare (%v), and an unchecked upgrade could drop keys; nothing was applied. Check access (kubectl auth can-i get secret/%s -n %s) and pass --post-renderer-args --namespace=NS --post-renderer-args --kube-context=CTX if Helm's differ from the defaults, or add --post-renderer-args --offline to check only the stream",
			a.Release, namespace, secretName, err, secretName, namespace)
	}
	if v.secret == nil {
		return a.firstInstall(ctx, c, v.target, in, namespace, secretName)
	}
	if len(v.findings) == 0 {
		return nil
	}
	return v.refuse(ctx, "guard", refusal(v.findings))
}

// firstInstall lets a render through when the live keyring is not found only if no deployed revision of the
// release rendered it: a first install, or a keyring new to this release. Otherwise the Secret was deleted or the
// namespace is wrong, and an upgrade would generate fresh keys that every live token fails against. A render whose
// keyring has a new name while the deployed revision's keyring is no longer rendered moves every consumer to fresh
// keys (a renamed rotate-key.secret.name): refused too. Only this branch reads the record: an intact upgrade costs
// one GET.
func (a *Guard) firstInstall(ctx context.Context, c *Config, target *kube.Keyring, in []byte, namespace, secretName string) error {
	refuse := func(why string) error {
		return exitcode.Withf(exitcode.Refused, "rotate-key guard refused release %q: keyring Secret %s/%s is not in the cluster, and %s; nothing was applied. If the namespace is wrong, pass --post-renderer-args --namespace=NS (Helm does not tell a post-renderer). If the Secret was deleted, restore it first: helm -n %s rollback %s REVISION re-creates it from that revision's record, with the keys as that revision rendered them (helm history %s -n %s lists the revisions; docs/RUNBOOKS/requests-proxy-key-rotation.md, block REPAIR, finds the right one). An upgrade now would generate fresh keys and reject every live token",
			a.Release, namespace, secretName, why, namespace, a.Release, a.Release, namespace)
	}
	data, err := target.DeployedRevision(ctx, c.Settings.Driver, a.Release)
	if err != nil {
		return refuse(fmt.Sprintf("the release's records cannot be read to tell a first install (%v)", err))
	}
	if data == nil {
		return nil // no deployed revision: a first install
	}
	rel, err := release.Decode(data)
	if err != nil {
		return refuse(fmt.Sprintf("the deployed revision's record cannot be read (%v)", err))
	}
	if prev, err := guard.FindSecret([]byte(rel.Manifest), namespace, secretName); err != nil || prev != nil {
		return refuse(fmt.Sprintf("the deployed revision %d of the release rendered it", rel.Version))
	}
	if old := guard.SecretNameHint([]byte(rel.Manifest)); old != "" && old != secretName {
		if still, err := guard.FindSecret(in, namespace, old); err != nil || still == nil {
			return exitcode.Withf(exitcode.Refused, "rotate-key guard refused release %q: the render moves its keyring from Secret %s/%s (deployed revision %d) to %s, which does not exist: every consumer would switch to fresh keys and every live token would be rejected; nothing was applied. Keep the keyring's name (rotate-key.secret.name) as it is: a new name is a new keyring, and tokens signed with the old keys would fail against it",
				a.Release, namespace, old, rel.Version, secretName)
		}
	}
	return nil // the keyring is new to this release
}

// HookGuard is `rotate-key hook guard`, the chart's pre-upgrade and pre-rollback hook Job: the server-side layer of
// the guard, for upgrades and rollbacks run without the post-renderer.
type HookGuard struct {
	// Where is the hook: guard.UpgradeHook or guard.RollbackHook.
	Where                      guard.Where
	Release, Secret, Namespace string
	Expect                     guard.Described
}

// Run reads the live Secret (one GET) and returns the verdict line, or the refusal (exit 6).
func (a *HookGuard) Run(ctx context.Context, c *Config) (string, error) {
	what := "pre-upgrade"
	if a.Where == guard.RollbackHook {
		what = "pre-rollback"
	}
	v, err := judgeLive(ctx, c, a.Namespace, a.Secret, func(live *guard.Live, now time.Time) []guard.Finding {
		return guard.CheckDescribed(a.Expect, live, now)
	})
	if err != nil {
		return "", fmt.Errorf("rotate-key guard (%s) cannot read keyring Secret %s/%s and refuses, because an unchecked %s could drop keys: %w", what, a.Namespace, a.Secret, what, err)
	}
	switch {
	case v.secret == nil:
		return fmt.Sprintf("%s/%s: not found; nothing to protect", a.Namespace, a.Secret), nil
	case len(v.findings) == 0:
		return fmt.Sprintf("%s/%s: the %s keeps every key; allowed", a.Namespace, a.Secret, what), nil
	}
	refusal := &guard.Refusal{Release: a.Release, Namespace: a.Namespace, Secret: a.Secret, Where: a.Where, Findings: v.findings}
	fmt.Fprintln(c.Out, refusal.Error())
	return "", v.refuse(ctx, "hook guard", refusal)
}

// liveVerdict is what the post-renderer and the hook guard share: one GET of the live keyring Secret, judged by
// judge at the API server's time. A missing Secret (a first install) has no findings; an unreadable one is an
// error, which each caller turns into its own fail-closed refusal.
type liveVerdict struct {
	target   *kube.Keyring
	secret   *corev1.Secret // nil: not found
	findings []guard.Finding
}

func judgeLive(ctx context.Context, c *Config, namespace, name string, judge func(*guard.Live, time.Time) []guard.Finding) (liveVerdict, error) {
	target, err := c.Connect(namespace, name)
	if err != nil {
		return liveVerdict{}, err
	}
	secret, err := target.Secret(ctx)
	switch {
	case apierrors.IsNotFound(err):
		return liveVerdict{target: target}, nil
	case err != nil:
		return liveVerdict{}, err
	}
	now, err := target.Now(ctx)
	if err != nil {
		return liveVerdict{}, err
	}
	return liveVerdict{target: target, secret: secret, findings: judge(&guard.Live{Data: secret.Data, Annotations: secret.Annotations}, now)}, nil
}

// refuse records the refusal as an UpgradeRefused Event on the Secret (by instance) and returns it with exit 6.
func (v liveVerdict) refuse(ctx context.Context, instance string, r *guard.Refusal) error {
	v.target.Instance = instance
	v.target.Event(ctx, v.secret, corev1.EventTypeWarning, "UpgradeRefused", r.Error())
	return exitcode.With(exitcode.Refused, r)
}
