package release

import (
	"strings"
	"testing"
)

const hookJob = `apiVersion: batch/v1
kind: Job
metadata:
  name: app-rotate-key-%s
  annotations:
    rotate-key.tracebloc.io/hook-step: %s
spec:
  template:
    spec:
      containers:
        - name: rotate-key
          args: ["hook", "step", "%s", "--secret", "app-keys", "--namespace", "ns"]
`

func job(step string) string { return strings.ReplaceAll(hookJob, "%s", step) }

func TestFindRotationHooks(t *testing.T) {
	rel := &Release{Hooks: []*Hook{
		{Kind: "Job", Weight: 30, Manifest: job("promote")},
		{Kind: "Job", Weight: 10, Manifest: job("add")},
		{Kind: "Job", Weight: 5, Manifest: "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: db-migrate\n"},
		{Kind: "ConfigMap", Weight: 1, Manifest: job("not-a-job")},
	}}
	h, ok := FindRotationHooks(rel)
	if !ok || strings.Join(h.Steps, ",") != "add,promote" || h.Secret != "app-keys" {
		t.Fatalf("got %+v %v", h, ok)
	}
	if _, ok := FindRotationHooks(&Release{Hooks: rel.Hooks[2:]}); ok {
		t.Fatal("a release without rotation hook Jobs must take the local path")
	}
}
