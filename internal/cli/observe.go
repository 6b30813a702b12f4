package cli

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/kube"
	"github.com/tracebloc/helm-rotate-key/internal/release"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

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
}

// observe reads the release record (best effort), the keyring Secret, its state and configuration, and the API
// server's time.
func observe(ctx context.Context, settings *helmenv.Settings, namespace, secretName, releaseName string, o rotation.Overrides) (*observation, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	target, err := connectKeyring(settings, namespace, secretName)
	if err != nil {
		return nil, err
	}
	obs := &observation{target: target}
	if releaseName == "" { // a hook Job: it may read its keyring Secret only, never Helm's release records
		obs.releaseErr = fmt.Errorf("no release record read")
	} else if data, err := target.ReleaseRecord(ctx, settings.Driver, releaseName); err != nil {
		obs.releaseErr = err
	} else if rel, err := release.Decode(data); err != nil {
		obs.releaseErr = err
	} else {
		s := release.Summarize(rel)
		obs.record = rel
		obs.release = &s
		obs.values = map[string]any{}
		if rel.Chart != nil {
			for k, v := range rel.Chart.Values {
				obs.values[k] = v
			}
		}
		for k, v := range rel.Config {
			obs.values[k] = v
		}
	}
	secret, err := target.Secret(ctx)
	switch {
	case apierrors.IsNotFound(err):
		return obs, nil
	case err != nil:
		return nil, fmt.Errorf("cannot read the keyring of release %q: %w", releaseName, err)
	}
	obs.secret = secret
	obs.keyring, obs.keyringErr = keyring.Parse(namespace+"/"+secretName, secret.Data)
	obs.state, obs.stateErr = rotation.ParseState(secret.Annotations)
	obs.config, obs.configErr = rotation.ResolveConfig(secret.Annotations, obs.values, o)
	if obs.now, err = target.Now(ctx); err != nil {
		return nil, err
	}
	return obs, nil
}

// releaseTarget is the release, its keyring Secret and namespace, as every command that takes RELEASE resolves them.
type releaseTarget struct {
	Release, Secret string
	namespace       string
}

// complete fills the target from the arguments: --secret defaults to RELEASE-requests-proxy-admin.
func (r *releaseTarget) complete(args []string, settings *helmenv.Settings) {
	r.Release, r.namespace = args[0], settings.ResolveNamespace()
	if r.Secret == "" {
		r.Secret = r.Release + DefaultSecretSuffix
	}
}

// require turns a missing Secret, a broken keyring, an unreadable state or a bad configuration into the error a
// command that acts on the keyring must stop with.
func (obs *observation) require(namespace, secretName, releaseName string) error {
	switch {
	case obs.secret == nil:
		return exitcode.Withf(exitcode.Usage, "keyring Secret %s/%s not found: is %q the release, and its Secret named like that? (--secret NAME, -n NAMESPACE)", namespace, secretName, releaseName)
	case obs.keyringErr != nil:
		return exitcode.With(exitcode.Refused, obs.keyringErr)
	case obs.stateErr != nil:
		return exitcode.Withf(exitcode.Refused, "keyring Secret %s/%s: %v", namespace, secretName, obs.stateErr)
	case obs.configErr != nil:
		return exitcode.With(exitcode.Usage, obs.configErr)
	}
	return nil
}
