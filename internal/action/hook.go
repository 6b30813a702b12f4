package action

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/engine"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// CronHook is the name of the chart's CronJob step, which performs every transition.
const CronHook = "cron"

// Hook is `rotate-key hook step|cron`, run inside the chart's Jobs: one Job's share of the rotation
// (rotation.Table's Hooks), or every step in the CronJob.
type Hook struct {
	// Name is the hook Job (add, rollout, promote, retire) or CronHook.
	Name      string
	Secret    string
	Namespace string
	// Request is the requested rotation id (the chart value rotate-key.rotation.request).
	Request string
	Timeout time.Duration
}

// HookResult is where the Job left the rotation.
type HookResult = engine.Result

// Run drives the engine for this Job. A lock held by another run (e.g. the pod of a Job that was killed) is waited
// out up to the lease's lifetime instead of failing the upgrade at once.
func (h *Hook) Run(ctx context.Context, c *Config) (HookResult, error) {
	t := Target{Secret: h.Secret, Namespace: h.Namespace}
	obs, err := c.observe(ctx, t, rotation.Overrides{})
	if err != nil {
		return HookResult{}, err
	}
	if err := obs.require(t); err != nil {
		return HookResult{}, err
	}
	holder := "pod " + c.Getenv("POD_NAME")
	if c.Getenv("POD_NAME") == "" {
		holder = c.Identity.Holder
	}
	run := c.newEngine(obs, holder, ActorOf(holder)+" (hook "+h.Name+")", h.Timeout)
	run.Request, run.Force = h.Request, h.Request != ""
	if h.Name != CronHook {
		run.Hook = h.Name
	}
	start := h.Name == CronHook || h.Request != ""
	deadline := c.now().Add(rotation.LeaseDuration + 15*time.Second)
	for {
		res, err := run.Run(ctx, start)
		var held *rotation.LockHeldError
		if errors.As(err, &held) && c.now().Before(deadline) {
			fmt.Fprintf(c.Out, "%s/%s: %v; waiting for the lease to be released or to expire\n", h.Namespace, h.Secret, err)
			if err := c.sleep(ctx, 5*time.Second); err != nil {
				return res, err
			}
			continue
		}
		if err != nil {
			fmt.Fprintf(c.Out, "%s/%s: hook %s failed: %v\n", h.Namespace, h.Secret, h.Name, err)
			return res, Classify(err)
		}
		return res, nil
	}
}
