package kube

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FailedJobs explains the failed Jobs matching selector (the chart's rotation Jobs) created at or after since (the
// API server's clock; a Job left failed by an earlier upgrade or rollback is not this one's cause): one entry per
// Job, with the last lines of its pod's termination message (the rotate-key log lines that say why). Best effort:
// what cannot be read is left out. The Jobs' output never holds key material.
func (c *Cluster) FailedJobs(ctx context.Context, selector string, since time.Time) []string {
	jobs, err := c.Client.BatchV1().Jobs(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil
	}
	var out []string
	for _, job := range jobs.Items {
		if !jobFailed(&job) || job.CreationTimestamp.Time.Before(since.Truncate(time.Second)) {
			continue
		}
		line := "Job " + job.Name + " failed"
		pods, err := c.Client.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + job.Name})
		if err == nil {
			for _, p := range pods.Items {
				if msg := lastLines(terminationMessage(&p), 8); msg != "" {
					line += ":\n    " + strings.ReplaceAll(msg, "\n", "\n    ")
				}
			}
		}
		out = append(out, line)
	}
	sort.Strings(out)
	return out
}

func jobFailed(job *batchv1.Job) bool {
	for _, c := range job.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func terminationMessage(p *corev1.Pod) string {
	for _, s := range p.Status.ContainerStatuses {
		if t := s.State.Terminated; t != nil && t.ExitCode != 0 {
			if t.Message != "" {
				return t.Message
			}
			return fmt.Sprintf("exit %d (%s)", t.ExitCode, t.Reason)
		}
	}
	if p.Status.Message != "" {
		return p.Status.Message
	}
	return ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ActiveJobs names the Jobs matching selector that have not ended (neither Complete nor Failed): hook Jobs a helm
// started that still run after the helm itself died.
func (c *Cluster) ActiveJobs(ctx context.Context, selector string) ([]string, error) {
	jobs, err := c.Client.BatchV1().Jobs(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("listing the rotation Jobs in %s: %w", c.Namespace, err)
	}
	var out []string
	for _, job := range jobs.Items {
		ended := false
		for _, cond := range job.Status.Conditions {
			if (cond.Type == batchv1.JobComplete || cond.Type == batchv1.JobFailed) && cond.Status == corev1.ConditionTrue {
				ended = true
			}
		}
		if !ended && job.DeletionTimestamp == nil {
			out = append(out, job.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}
