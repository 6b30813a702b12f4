package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// A hook upgrade that failed names the Jobs that failed in it, not one a refused rollback left failed earlier (a
// cold reviewer's Ctrl-C of a rotation was blamed on a 15-minute-old guard-rollback Job).
func TestFailedJobsNamesOnlyThisUpgradesJobs(t *testing.T) {
	started := time.Date(2026, 12, 1, 3, 0, 0, 500_000_000, time.UTC)
	job := func(name string, created time.Time) *batchv1.Job {
		return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": "rk"}, CreationTimestamp: metav1.NewTime(created)},
			Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue}}}}
	}
	c := &Cluster{Client: fake.NewClientset(job("old-guard-rollback", started.Add(-15*time.Minute)), job("this-rollout", started.Truncate(time.Second))), Namespace: "ns"}
	got := strings.Join(c.FailedJobs(context.Background(), "app=rk", started), "\n")
	if !strings.Contains(got, "this-rollout") || strings.Contains(got, "old-guard-rollback") {
		t.Fatalf("failed Jobs of this upgrade: %q", got)
	}
}
