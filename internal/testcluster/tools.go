package testcluster

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Tools are the absolute paths of the binaries the cluster-in-a-box runs, built by `make tools`.
type Tools struct {
	Dir               string
	Etcd              string
	APIServer         string
	ControllerManager string
	Scheduler         string
	Kubectl           string
	Kwok              string
	KwokStages        string
	Helm3             string
	Helm4             string
	// Versions is tools/versions.mk as a map (K8S_VERSION, HELM3_VERSION, ...).
	Versions map[string]string
}

// RepoRoot finds the root of this repository from the working directory (tests run in their package folder).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/tracebloc/helm-rotate-key\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testcluster: not inside the helm-rotate-key repository (no go.mod of module github.com/tracebloc/helm-rotate-key above the working directory)")
		}
		dir = parent
	}
}

// FindTools locates the built tools: $ROTATE_KEY_TOOLS_DIR, else $XDG_CACHE_HOME (or ~/.cache)
// /helm-rotate-key/tools — the Makefile's default — with the versions of tools/versions.mk. A missing binary is an error that says to run `make tools`.
func FindTools(root string) (Tools, error) {
	versions, err := readVersions(filepath.Join(root, "tools", "versions.mk"))
	if err != nil {
		return Tools{}, err
	}
	dir := os.Getenv("ROTATE_KEY_TOOLS_DIR")
	if dir == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return Tools{}, fmt.Errorf("testcluster: no tools folder: set ROTATE_KEY_TOOLS_DIR (%w)", err)
			}
			cache = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(cache, "helm-rotate-key", "tools")
	}
	t := Tools{Dir: dir, Versions: versions}
	var missing []string
	path := func(name, versionKey string) string {
		p := filepath.Join(dir, name+"-"+versions[versionKey])
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, filepath.Base(p))
		}
		return p
	}
	t.Etcd = path("etcd", "ETCD_VERSION")
	t.APIServer = path("kube-apiserver", "K8S_VERSION")
	t.ControllerManager = path("kube-controller-manager", "K8S_VERSION")
	t.Scheduler = path("kube-scheduler", "K8S_VERSION")
	t.Kubectl = path("kubectl", "K8S_VERSION")
	t.Kwok = path("kwok", "KWOK_VERSION")
	t.KwokStages = path("kwok-stages", "KWOK_VERSION")
	t.Helm3 = path("helm3", "HELM3_VERSION")
	t.Helm4 = path("helm4", "HELM4_VERSION")
	if len(missing) > 0 {
		return t, fmt.Errorf("testcluster: tools missing in %s: %s — run `make tools` (builds them once from the Go module proxy)", dir, strings.Join(missing, ", "))
	}
	return t, nil
}

func readVersions(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("testcluster: reading tool versions: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, ":="); ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out, sc.Err()
}
