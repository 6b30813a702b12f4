package guard

import (
	"bytes"

	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// ConfigAnnotation is one of the configuration annotations the rotate-key library puts on the keyring Secret: a
// rendered Secret carrying it is the keyring.
const ConfigAnnotation = "rotate-key.tracebloc.io/ttl-seconds"

// SecretNameHint returns the name of the Secret in the stream that carries the rotate-key library's annotations,
// or "" (not rendered, or not a library chart). Parse errors are left to FindSecret.
func SecretNameHint(stream []byte) string {
	for _, n := range candidateNodes(stream) {
		if n.GetKind() == "Secret" {
			if _, ok := n.GetAnnotations()[ConfigAnnotation]; ok {
				return n.GetName()
			}
		}
	}
	return ""
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
