package kube

import (
	"context"
	"fmt"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GuardRollbackJob is the name the library chart gives its pre-rollback guard Job (charts/rotate-key _guard.tpl).
func GuardRollbackJob(release string) string {
	if len(release) > 30 {
		release = release[:30]
	}
	return strings.TrimSuffix(release, "-") + "-rotate-key-guard-rollback"
}

// recordName is the object name Helm's secret and configmap drivers store a revision under.
func recordName(release string, revision int) string {
	return fmt.Sprintf("sh.helm.release.v1.%s.v%d", release, revision)
}

// RefusedRollback tells whether revision (stored as pending-rollback) is a `helm rollback` its guard hook refused:
// the release's pre-rollback guard Job failed, and it was created no earlier than the revision's record. Helm runs
// pre-rollback hooks before it applies anything and stops at the first that fails, so such a revision changed no
// object: only its record is left, and it blocks every later operation.
func (c *Cluster) RefusedRollback(ctx context.Context, driver, release string, revision int) (bool, error) {
	var recorded metav1.Time
	switch driver {
	case "", "secret", "secrets":
		s, err := c.Client.CoreV1().Secrets(c.Namespace).Get(ctx, recordName(release, revision), metav1.GetOptions{})
		if err != nil {
			return false, fmt.Errorf("reading Helm's record of revision %d: %w", revision, err)
		}
		recorded = s.CreationTimestamp
	case "configmap", "configmaps":
		cm, err := c.Client.CoreV1().ConfigMaps(c.Namespace).Get(ctx, recordName(release, revision), metav1.GetOptions{})
		if err != nil {
			return false, fmt.Errorf("reading Helm's record of revision %d: %w", revision, err)
		}
		recorded = cm.CreationTimestamp
	default:
		return false, fmt.Errorf("HELM_DRIVER=%q is not supported: rotate-key reads releases stored by the \"secret\" or \"configmap\" driver", driver)
	}
	job, err := c.Client.BatchV1().Jobs(c.Namespace).Get(ctx, GuardRollbackJob(release), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the guard Job %s: %w", GuardRollbackJob(release), err)
	}
	if job.CreationTimestamp.Before(&recorded) {
		return false, nil
	}
	for _, cond := range job.Status.Conditions {
		if cond.Type == batchv1.JobFailed && cond.Status == corev1.ConditionTrue {
			return true, nil
		}
	}
	return false, nil
}

// DeleteReleaseRecord deletes Helm's record of one revision: Helm then forgets it, and no object in the cluster
// changes.
func (c *Cluster) DeleteReleaseRecord(ctx context.Context, driver, release string, revision int) error {
	var err error
	switch driver {
	case "", "secret", "secrets":
		err = c.Client.CoreV1().Secrets(c.Namespace).Delete(ctx, recordName(release, revision), metav1.DeleteOptions{})
	case "configmap", "configmaps":
		err = c.Client.CoreV1().ConfigMaps(c.Namespace).Delete(ctx, recordName(release, revision), metav1.DeleteOptions{})
	default:
		err = fmt.Errorf("HELM_DRIVER=%q is not supported", driver)
	}
	if err != nil {
		return fmt.Errorf("deleting Helm's record of revision %d of %s (needs delete on %s in %s): %w", revision, release, driverKind(driver), c.Namespace, err)
	}
	return nil
}

func driverKind(driver string) string {
	if strings.HasPrefix(driver, "configmap") {
		return "configmaps"
	}
	return "secrets"
}

// DeletePendingRecord deletes Helm's record of revision only while Helm still labels it pending (pending-install,
// pending-upgrade, pending-rollback), with the record's resourceVersion as a precondition: a helm that finishes at
// the last moment rewrites the record (deployed or failed), and then nothing is deleted. It reports whether it
// deleted the record.
func (c *Cluster) DeletePendingRecord(ctx context.Context, driver, release string, revision int) (bool, error) {
	var labels map[string]string
	var rv string
	var err error
	switch driver {
	case "", "secret", "secrets":
		var s *corev1.Secret
		if s, err = c.Client.CoreV1().Secrets(c.Namespace).Get(ctx, recordName(release, revision), metav1.GetOptions{}); err == nil {
			labels, rv = s.Labels, s.ResourceVersion
		}
	case "configmap", "configmaps":
		var cm *corev1.ConfigMap
		if cm, err = c.Client.CoreV1().ConfigMaps(c.Namespace).Get(ctx, recordName(release, revision), metav1.GetOptions{}); err == nil {
			labels, rv = cm.Labels, cm.ResourceVersion
		}
	default:
		return false, fmt.Errorf("HELM_DRIVER=%q is not supported", driver)
	}
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading Helm's record of revision %d of %s: %w", revision, release, err)
	case !strings.HasPrefix(labels["status"], "pending-"):
		return false, nil
	}
	opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}}
	if driverKind(driver) == "configmaps" {
		err = c.Client.CoreV1().ConfigMaps(c.Namespace).Delete(ctx, recordName(release, revision), opts)
	} else {
		err = c.Client.CoreV1().Secrets(c.Namespace).Delete(ctx, recordName(release, revision), opts)
	}
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return false, nil // rewritten or deleted meanwhile: not ours to delete any more
	}
	if err != nil {
		return false, fmt.Errorf("deleting Helm's record of revision %d of %s (needs delete on %s in %s): %w", revision, release, driverKind(driver), c.Namespace, err)
	}
	return true, nil
}
