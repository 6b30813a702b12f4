package action

import (
	"context"
	"fmt"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// Check is `rotate-key check RELEASE`: overdue or not, by rotation.Overdue at the API server's time.
type Check struct {
	Target
}

// Run returns the keyring's state line, or an Overdue error saying why and what to run.
func (a *Check) Run(ctx context.Context, c *Config) (string, error) {
	obs, err := c.observe(ctx, a.Target, rotation.Overrides{})
	if err != nil {
		return "", err
	}
	if err := obs.require(a.Target); err != nil {
		return "", err
	}
	if back := obs.resurrected(a.Target); back != "" {
		return "", exitcode.Withf(exitcode.Overdue, "%s", back)
	}
	if reason := rotation.Overdue(obs.state, obs.now); reason != "" {
		return "", exitcode.Withf(exitcode.Overdue, "%s/%s is overdue: %s; run: helm -n %s rotate-key %s%s", a.Namespace, a.Secret, reason, a.Namespace, a.Release, a.SecretFlag())
	}
	return fmt.Sprintf("%s/%s: %s; nothing overdue", a.Namespace, a.Secret, obs.state), nil
}
