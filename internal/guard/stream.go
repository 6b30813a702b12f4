// Package guard decides whether what Helm is about to apply keeps a release's keyring Secret intact: the Secret is
// still rendered, keeps the keep policy, and keeps every live key version with its bytes and the live `active` —
// except exactly the change a rotation in progress expects next. It is pure: the post-renderer, the hook Job and
// `rotate-key upgrade` read the live Secret and hand it in; nothing here talks to the API server or prints key
// bytes.
package guard

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// Rendered is the keyring Secret as a render would apply it.
type Rendered struct {
	Data        map[string][]byte
	Annotations map[string]string
}

// FindSecret parses a rendered manifest stream and returns the Secret named name in namespace (a document without
// a namespace is the release's; namespace "" matches any), nil when the stream does not render it. A stream that is not YAML, or that
// renders the Secret twice, is an error: Helm would fail or apply one of them arbitrarily.
func FindSecret(stream []byte, namespace, name string) (*Rendered, error) {
	nodes, err := (&kio.ByteReader{Reader: bytes.NewReader(candidates(stream)), OmitReaderAnnotations: true}).Read()
	if err != nil {
		return nil, fmt.Errorf("the rendered manifests are not valid YAML: %w", err)
	}
	var found *Rendered
	count := 0
	var visit func(n *yaml.RNode) error
	visit = func(n *yaml.RNode) error {
		if n == nil || n.YNode().Kind != yaml.MappingNode {
			return nil
		}
		kind := n.GetKind()
		if kind == "List" || kind == "SecretList" {
			items, err := n.Pipe(yaml.Lookup("items"))
			if err != nil || items == nil {
				return nil
			}
			elems, err := items.Elements()
			if err != nil {
				return nil
			}
			for _, e := range elems {
				if err := visit(e); err != nil {
					return err
				}
			}
			return nil
		}
		if kind != "Secret" || n.GetName() != name {
			return nil
		}
		if ns := n.GetNamespace(); ns != "" && namespace != "" && ns != namespace {
			return nil
		}
		r, err := decodeSecret(n)
		if err != nil {
			return err
		}
		count++
		found = r
		return nil
	}
	for _, n := range nodes {
		if err := readsLikeHelm(n.YNode()); err != nil {
			return nil, err
		}
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	if count > 1 {
		return nil, fmt.Errorf("the rendered manifests hold Secret %s/%s %d times: Helm would apply only one of them", namespace, name, count)
	}
	return found, nil
}

// readsLikeHelm refuses what Helm would read differently from the guard: a mapping that holds a key twice (Helm
// applies the last value, a reader that takes the first checks something else: a `kind` or a key version given
// twice), and a scalar whose tag changes its value (!!binary decodes base64, a local tag is Helm's to interpret).
func readsLikeHelm(n *yaml.Node) error {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!binary" || strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!")) {
		return fmt.Errorf("the rendered manifests hold a value with the YAML tag %s (line %d), which Helm reads differently from its text: render the plain value instead", n.Tag, n.Line)
	}
	if n.Kind == yaml.MappingNode {
		seen := make(map[string]bool, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Value == "<<" {
				continue
			}
			if seen[k.Value] {
				return fmt.Errorf("the rendered manifests hold key %q twice in one mapping (line %d): Helm would apply the last value, which the guard does not read as Helm does. Remove the duplicate from the chart's template", k.Value, k.Line)
			}
			seen[k.Value] = true
		}
	}
	for _, c := range n.Content {
		if err := readsLikeHelm(c); err != nil {
			return err
		}
	}
	return nil
}

// separator matches a YAML document separator line.
var separator = regexp.MustCompile(`(?m)^---`)

// candidates returns the documents of stream that can hold a Secret (their text mentions "Secret", or they are a
// List, or they hold an escape or a tag): parsing only those keeps the guard's time and memory near the size of what it checks, not of the whole
// release. A document is never dropped when it could be the keyring, so this cannot hide one; a split that cuts
// a document wrongly makes the parse fail, which refuses.
func candidates(stream []byte) []byte {
	bounds := separator.FindAllIndex(stream, -1)
	var out bytes.Buffer
	start := 0
	keep := func(doc []byte) {
		// A backslash may spell either word with escapes ("Secre\x74", an escaped line break) in a quoted scalar,
		// a tag (!!binary) in base64.
		if bytes.Contains(doc, []byte("Secret")) || bytes.Contains(doc, []byte("List")) || bytes.ContainsAny(doc, `\!`) {
			if out.Len() > 0 && !bytes.HasPrefix(doc, []byte("---")) {
				out.WriteString("---\n")
			}
			out.Write(doc)
			if len(doc) > 0 && doc[len(doc)-1] != '\n' {
				out.WriteByte('\n')
			}
		}
	}
	for _, b := range bounds {
		keep(stream[start:b[0]])
		start = b[0]
	}
	keep(stream[start:])
	return out.Bytes()
}

// decodeSecret reads data (base64) and stringData (plain, winning over data as the API server does).
func decodeSecret(n *yaml.RNode) (*Rendered, error) {
	r := &Rendered{Data: map[string][]byte{}, Annotations: n.GetAnnotations()}
	data, err := n.GetFieldValue("data")
	if err == nil && data != nil {
		m, ok := data.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("the Secret %s: data is not a map", n.GetName())
		}
		for k, v := range m {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("the Secret %s: data.%s is not a base64 string", n.GetName(), k)
			}
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, fmt.Errorf("the Secret %s: data.%s is not valid base64", n.GetName(), k)
			}
			r.Data[k] = b
		}
	}
	stringData, err := n.GetFieldValue("stringData")
	if err == nil && stringData != nil {
		m, ok := stringData.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("the Secret %s: stringData is not a map", n.GetName())
		}
		for k, v := range m {
			r.Data[k] = []byte(fmt.Sprint(v))
		}
	}
	return r, nil
}
