package action

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/kube"
	"github.com/tracebloc/helm-rotate-key/internal/release"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// DefaultSecretSuffix names the keyring Secret of a release when --secret is not given: <release>-requests-proxy-admin.
const DefaultSecretSuffix = "-requests-proxy-admin"

// Target is the release, its keyring Secret and namespace, as every command that takes RELEASE resolves them.
type Target struct {
	Release, Secret, Namespace string
}

// SecretFlag is " --secret NAME" when the keyring is not at the default name, for the commands an action prints.
func (t Target) SecretFlag() string {
	if t.Secret == t.Release+DefaultSecretSuffix {
		return ""
	}
	return " --secret " + t.Secret
}

// observation is one read of a release's keyring: what status, plan, check and the run's prompt show.
type observation struct {
	target  *kube.Keyring
	release *release.Summary
	// record is the decoded release (its stored chart and hooks), nil when unreadable.
	record *release.Release
	// releaseErr says why the release record is unreadable (e.g. no list on Secrets in a hook Job).
	releaseErr error
	values     map[string]any
	secret     *corev1.Secret // nil when the Secret does not exist
	keyring    *keyring.Keyring
	keyringErr error
	state      rotation.State
	stateErr   error
	config     rotation.Config
	configErr  error
	now        time.Time
	// overrides are the command's flags that override the configuration (--ttl, …).
	overrides rotation.Overrides
	// releaseName is the release observed ("" in a hook Job).
	releaseName string
}

// observe reads the release record (best effort; none for releaseName ""), the keyring Secret, its state and
// configuration, and the API server's time.
func (c *Config) observe(ctx context.Context, t Target, o rotation.Overrides) (*observation, error) {
	target, err := c.Connect(t.Namespace, t.Secret)
	if err != nil {
		return nil, err
	}
	obs := &observation{target: target, overrides: o, releaseName: t.Release}
	if obs.record, obs.values, obs.releaseErr = c.releaseValues(ctx, target, t.Release); obs.releaseErr == nil {
		s := release.Summarize(obs.record)
		obs.release = &s
	}
	secret, err := target.Secret(ctx)
	switch {
	case apierrors.IsNotFound(err):
		return obs, nil
	case err != nil:
		return nil, fmt.Errorf("cannot read the keyring of release %q: %w", t.Release, err)
	}
	obs.secret = secret
	obs.keyring, obs.keyringErr = keyring.Parse(t.Namespace+"/"+t.Secret, secret.Data)
	obs.state, obs.stateErr = rotation.ParseState(secret.Annotations)
	obs.config, obs.configErr = rotation.ResolveConfig(secret.Annotations, obs.values, o)
	if obs.now, err = target.Now(ctx); err != nil {
		return nil, err
	}
	return obs, nil
}

// releaseValues reads the release's current record and its values (the chart's defaults overlaid with the user's).
func (c *Config) releaseValues(ctx context.Context, target *kube.Keyring, releaseName string) (*release.Release, map[string]any, error) {
	if releaseName == "" { // a hook Job: it may read its keyring Secret only, never Helm's release records
		return nil, nil, fmt.Errorf("no release record read")
	}
	data, err := target.ReleaseRecord(ctx, c.Settings.Driver, releaseName)
	if err != nil {
		return nil, nil, err
	}
	rel, err := release.Decode(data)
	if err != nil {
		return nil, nil, err
	}
	values := map[string]any{}
	if rel.Chart != nil {
		for k, v := range rel.Chart.Values {
			values[k] = v
		}
	}
	for k, v := range rel.Config {
		values[k] = v
	}
	return rel, values, nil
}

// reconfigure resolves a run's configuration again, as observe did, from the Secret as the run just read it and
// the release's values now (engine.Engine.Reconfigure): a helm upgrade during the run may have raised the TTL.
func (c *Config) reconfigure(obs *observation) func(ctx context.Context, secret *corev1.Secret) (rotation.Config, error) {
	return func(ctx context.Context, secret *corev1.Secret) (rotation.Config, error) {
		values := obs.values
		if obs.record != nil {
			_, now, err := c.releaseValues(ctx, obs.target, obs.releaseName)
			if err != nil {
				return rotation.Config{}, err
			}
			values = now
		}
		return rotation.ResolveConfig(secret.Annotations, values, obs.overrides)
	}
}

// require turns a missing Secret, a broken keyring, an unreadable state or a bad configuration into the error an
// action on the keyring must stop with.
func (obs *observation) require(t Target) error {
	switch {
	case obs.secret == nil:
		return exitcode.Withf(exitcode.Usage, "keyring Secret %s/%s not found: is %q the release, and its Secret named like that? (--secret NAME, -n NAMESPACE)", t.Namespace, t.Secret, t.Release)
	case obs.ownerErr(t) != nil:
		return exitcode.With(exitcode.Usage, obs.ownerErr(t))
	case obs.keyringErr != nil:
		return exitcode.With(exitcode.Refused, obs.keyringErr)
	case obs.stateErr != nil:
		return exitcode.Withf(exitcode.Refused, "keyring Secret %s/%s: %v", t.Namespace, t.Secret, obs.stateErr)
	case obs.configErr != nil:
		return exitcode.With(exitcode.Usage, obs.configErr)
	}
	return nil
}

// ownerErr refuses a keyring Secret that Helm manages for another release: its TTL would be read from this
// release's values and its consumers would be another release's (found by the sixth cold read of the runbook).
func (obs *observation) ownerErr(t Target) error {
	owner := obs.secret.Annotations["meta.helm.sh/release-name"]
	if t.Release == "" || owner == "" || owner == t.Release {
		return nil
	}
	return fmt.Errorf("keyring Secret %s/%s belongs to release %q, not %q: its TTL and consumers are %s's. Run: helm -n %s rotate-key %s --secret %s — or name %s's own keyring with --secret", t.Namespace, t.Secret, owner, t.Release, owner, t.Namespace, owner, t.Secret, t.Release)
}

// resurrected names the retired versions the keyring holds again (rotation.State.Resurrected) and what to do, or
// "" when there are none. A layer of the guard would have refused the write that brought them back; this is what
// is left when none saw it (a chart without hooks upgraded plainly, no admission policy).
func (obs *observation) resurrected(t Target) string {
	if obs.keyring == nil || obs.stateErr != nil {
		return ""
	}
	back := obs.state.Resurrected(obs.keyring.Versions(), obs.keyring.Active)
	if len(back) == 0 {
		return ""
	}
	var kids, ops []string
	for _, v := range back {
		kids = append(kids, keyring.Kid(v))
		ops = append(ops, fmt.Sprintf(`{"op":"remove","path":"/data/%s"}`, strings.ReplaceAll(obs.keyring.Names[v], "/", "~1")))
	}
	restart := "restart every workload that reads the Secret"
	if obs.configErr == nil && len(obs.config.Consumers) > 0 {
		var refs []string
		for _, c := range obs.config.Consumers {
			refs = append(refs, strings.ToLower(c.Kind)+"/"+c.Name)
		}
		restart = fmt.Sprintf("restart the consumers: kubectl -n %s rollout restart %s", t.Namespace, strings.Join(refs, " "))
	}
	what := "is"
	if len(back) > 1 {
		what = "are"
	}
	when := "Its tokens must stay rejected (a retired key may have leaked). Remove it"
	if until, err := time.Parse(time.RFC3339, obs.secret.Annotations[rotation.AnnoRepairedUntil]); err == nil && obs.now.Before(until) && obs.state.Emergency == "" {
		when = fmt.Sprintf("A repair moved 'active' back from it (%s): signers that started meanwhile signed with it, and their tokens live until %s. Unless it leaked (then now), remove it after that time (the runbook's block EXTRA does)", rotation.AnnoRepairedUntil, until.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("%s %s back in keyring %s/%s, retired already (%s v%d): a rollback to a revision from before the retirement, or a chart that generates missing keys, brought it back, and no guard layer saw it. %s: kubectl -n %s patch secret %s --type=json -p '[%s]'; then %s; then find what added it (helm history %s): a chart that generates missing keys adds it again on its next plain helm upgrade (helm rotate-key upgrade and the chart's guard hooks refuse that upgrade)",
		strings.Join(kids, ", "), what, t.Namespace, t.Secret, rotation.AnnoRetiredUpTo, obs.state.RetiredUpTo, when,
		t.Namespace, t.Secret, strings.Join(ops, ","), restart, t.Release)
}
