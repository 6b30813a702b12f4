package action

import (
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// tempDir makes a private temporary folder for a chart or values file handed to Helm, and its removal.
func tempDir(pattern string) (string, func(), error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", nil, err
	}
	return dir, func() { _ = os.RemoveAll(dir) }, nil
}

// writeValues writes values as a values file in dir (mode 0600: they may be sensitive) and returns its path.
func writeValues(dir string, values map[string]any) (string, error) {
	data, err := yaml.Marshal(values)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "values.yaml")
	return path, os.WriteFile(path, data, 0o600)
}
