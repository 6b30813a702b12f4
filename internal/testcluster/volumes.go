package testcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// mountVolumes projects a serving pod's Secret volumes into its folder and links every container's mount path
// under the pod's RUNNER_ROOT to them. Other volume kinds are left out (see the runner contract).
func (r *runner) mountVolumes(ctx context.Context, s *servicePod) error {
	s.volumeMu.Lock()
	defer s.volumeMu.Unlock()
	if err := r.projectSecrets(ctx, s, false); err != nil {
		return err
	}
	for _, c := range append(append([]corev1.Container{}, s.pod.Spec.InitContainers...), s.pod.Spec.Containers...) {
		for _, m := range c.VolumeMounts {
			target := s.volumeDir(m.Name)
			if _, err := os.Stat(target); err != nil {
				continue // not a Secret volume
			}
			link := filepath.Join(s.root, filepath.Clean("/"+m.MountPath))
			if m.SubPath != "" {
				target = filepath.Join(target, m.SubPath) // refreshed with the volume (a kubelet would not): see the contract
			}
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(target, link); err != nil && !os.IsExist(err) {
				return err
			}
		}
	}
	return nil
}

func (s *servicePod) volumeDir(name string) string { return filepath.Join(s.work, "volumes", name) }

// secretFiles is what a Secret volume shows: every data key as a file, or only the listed items at their paths.
func secretFiles(secret *corev1.Secret, src *corev1.SecretVolumeSource) map[string][]byte {
	files := map[string][]byte{}
	if len(src.Items) == 0 {
		for k, v := range secret.Data {
			files[k] = v
		}
		return files
	}
	for _, it := range src.Items {
		if v, ok := secret.Data[it.Key]; ok {
			files[it.Path] = v
		}
	}
	return files
}

// writeAtomically updates a volume folder the way the kubelet's AtomicWriter does: the new files go to a fresh
// hidden folder, the "..data" link is swapped to it in one rename, and each visible name is a link through
// "..data" — so a reader sees the old set or the new one, never a mix.
func writeAtomically(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	stamp := fmt.Sprintf("..%s", time.Now().Format("2006_01_02_15_04_05.000000000"))
	next := filepath.Join(dir, stamp)
	if err := os.Mkdir(next, 0o755); err != nil {
		return err
	}
	for name, v := range files {
		if strings.Contains(name, "/") {
			if err := os.MkdirAll(filepath.Join(next, filepath.Dir(name)), 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(next, name), v, 0o644); err != nil {
			return err
		}
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(stamp, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		top := e.Name()
		if strings.HasPrefix(top, "..") {
			continue
		}
		if _, ok := topLevel(files)[top]; !ok {
			_ = os.Remove(filepath.Join(dir, top))
		}
	}
	for top := range topLevel(files) {
		link := filepath.Join(dir, top)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", top), link); err != nil {
			return err
		}
	}
	if old != "" && old != stamp {
		return os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

func topLevel(files map[string][]byte) map[string]struct{} {
	out := map[string]struct{}{}
	for name := range files {
		top, _, _ := strings.Cut(name, "/")
		out[top] = struct{}{}
	}
	return out
}

// secretChanged schedules, for every serving pod that mounts the Secret, a refresh of its volume after the
// configured delay (one pending refresh per pod: the next periodic sync takes the Secret as it is then).
func (r *runner) secretChanged(ctx context.Context, secret *corev1.Secret) {
	r.mu.Lock()
	var pods []*servicePod
	for _, s := range r.services {
		if s.pod.Namespace == secret.Namespace && mountsSecret(s.pod, secret.Name) {
			pods = append(pods, s)
		}
	}
	r.mu.Unlock()
	for _, s := range pods {
		s.mu.Lock()
		pending := s.refreshDue
		s.refreshDue = true
		s.mu.Unlock()
		if pending {
			continue
		}
		delay := r.refresh.draw()
		time.AfterFunc(delay, func() {
			s.mu.Lock()
			s.refreshDue = false
			s.mu.Unlock()
			if ctx.Err() != nil || s.isTerminating() {
				return
			}
			if err := r.refreshVolumes(ctx, s); err != nil {
				r.appendLog(s.pod, fmt.Sprintf("runner: refreshing volumes: %v\n", err))
			}
		})
	}
}

// refreshVolumes rewrites a pod's Secret volumes from the Secrets as they are now.
func (r *runner) refreshVolumes(ctx context.Context, s *servicePod) error {
	s.volumeMu.Lock()
	defer s.volumeMu.Unlock()
	return r.projectSecrets(ctx, s, true)
}

// projectSecrets writes every Secret volume of the pod from its Secret as it is now. At start a missing optional
// Secret is an empty volume and a missing required one an error (the pod waits); on a refresh a missing Secret
// leaves the files as they are, as a kubelet does.
func (r *runner) projectSecrets(ctx context.Context, s *servicePod, refresh bool) error {
	for _, v := range s.pod.Spec.Volumes {
		if v.Secret == nil {
			continue
		}
		secret, err := r.client.CoreV1().Secrets(s.pod.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err) && refresh:
			continue
		case apierrors.IsNotFound(err) && ptr.Deref(v.Secret.Optional, false):
			secret = &corev1.Secret{}
		case err != nil:
			return fmt.Errorf("volume %q: Secret %q: %w", v.Name, v.Secret.SecretName, err)
		}
		if err := writeAtomically(s.volumeDir(v.Name), secretFiles(secret, v.Secret)); err != nil {
			return fmt.Errorf("volume %q: %w", v.Name, err)
		}
	}
	return nil
}

func mountsSecret(pod *corev1.Pod, name string) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == name {
			return true
		}
	}
	return false
}
