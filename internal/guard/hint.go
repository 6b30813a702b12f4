package guard

import (
	"bytes"
	"regexp"

	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/tracebloc/helm-rotate-key/internal/keyring"
)

// versionKey matches a version's data key in either naming style.
var versionKey = regexp.MustCompile(`^(key[.])?v[1-9][0-9]*$`)

// ConfigAnnotation is one of the configuration annotations the rotate-key library puts on the keyring Secret: a
// rendered Secret carrying it is the keyring.
const ConfigAnnotation = "rotate-key.tracebloc.io/ttl-seconds"

// SecretNameHint returns the name of the keyring Secret in the stream: the Secret that carries the rotate-key
// library's annotations, else the one Secret whose data has a keyring's shape (`active` and a version key) — a
// chart without the library names its keyring as it likes, and may render an unrelated Secret under the default
// name. "" when there is none, or several of that shape. Parse errors are left to FindSecret.
func SecretNameHint(stream []byte) string {
	shaped := []string{}
	for _, n := range candidateNodes(stream) {
		if n.GetKind() != "Secret" {
			continue
		}
		if _, ok := n.GetAnnotations()[ConfigAnnotation]; ok {
			return n.GetName()
		}
		if keyringShaped(n) {
			shaped = append(shaped, n.GetName())
		}
	}
	if len(shaped) == 1 {
		return shaped[0]
	}
	return ""
}

// keyringShaped reports whether a Secret's data or stringData holds `active` and at least one version key.
func keyringShaped(n *yaml.RNode) bool {
	active, version := false, false
	for _, field := range []string{"data", "stringData"} {
		m := n.Field(field)
		if m == nil || m.Value.YNode().Kind != yaml.MappingNode {
			continue
		}
		content := m.Value.YNode().Content
		for i := 0; i+1 < len(content); i += 2 {
			switch key := content[i].Value; {
			case key == keyring.ActiveKey:
				active = true
			case versionKey.MatchString(key):
				version = true
			}
		}
	}
	return active && version
}

// NamespaceHint returns the one namespace the stream's documents that can hold a Secret name in metadata.namespace,
// or "" when they name none or several: Helm does not tell a post-renderer the release's namespace, and a chart
// that writes {{ .Release.Namespace }} into its objects tells it instead. Parse errors are left to FindSecret.
func NamespaceHint(stream []byte) string {
	found := ""
	for _, n := range candidateNodes(stream) {
		switch ns := n.GetNamespace(); {
		case ns == "" || ns == found:
		case found == "":
			found = ns
		default:
			return ""
		}
	}
	return found
}

// candidateNodes parses the stream's documents that can hold a Secret, for the hints; nil when they are not YAML
// (FindSecret reports that).
func candidateNodes(stream []byte) []*yaml.RNode {
	nodes, err := (&kio.ByteReader{Reader: bytes.NewReader(candidates(stream)), OmitReaderAnnotations: true}).Read()
	if err != nil {
		return nil
	}
	return nodes
}
