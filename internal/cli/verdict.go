package cli

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/guard"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
	"github.com/tracebloc/helm-rotate-key/internal/kube"
)

// liveVerdict is what the post-renderer and the hook guard share: one GET of the live keyring Secret, judged by
// judge at the API server's time. A missing Secret (a first install) has no findings; an unreadable one is an
// error, which each caller turns into its own fail-closed refusal.
type liveVerdict struct {
	target   *kube.Keyring
	secret   *corev1.Secret // nil: not found
	findings []guard.Finding
}

func judgeLive(ctx context.Context, settings *helmenv.Settings, namespace, name string, judge func(*guard.Live, time.Time) []guard.Finding) (liveVerdict, error) {
	target, err := connectKeyring(settings, namespace, name)
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
