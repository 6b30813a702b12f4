// Package release decodes Helm release records (read from the cluster by package kube), read-only. Writes to a
// release always go through the user's own Helm CLI ($HELM_BIN) so that a Helm 3 release keeps being managed by
// Helm 3; see docs/decisions.md ("Helm SDK"). The record types are this package's own, holding only the fields
// rotate-key reads: the `sh.helm.release.v1` JSON that Helm 3 and Helm 4 both write is stable, and linking the
// Helm SDK's release and chart types would cost every invocation — the post-renderer runs on every upgrade —
// about 13 ms of package initialisation (docs/benchmarks.md, "Start-up").
package release

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
)

// Release is the part of a Helm release record rotate-key reads.
type Release struct {
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	// Version is the release revision.
	Version int    `json:"version,omitempty"`
	Info    *Info  `json:"info,omitempty"`
	Chart   *Chart `json:"chart,omitempty"`
	// Config holds the values the user supplied (not the chart's defaults).
	Config map[string]any `json:"config,omitempty"`
	// Manifest is the rendered manifest: it holds key material when the chart renders the keyring Secret.
	Manifest string  `json:"manifest,omitempty"`
	Hooks    []*Hook `json:"hooks,omitempty"`
}

// Info is a revision's status.
type Info struct {
	// Status is Helm's status word: deployed, superseded, failed, pending-upgrade, pending-rollback, ...
	Status      string `json:"status,omitempty"`
	Description string `json:"description,omitempty"`
}

// Hook is one rendered hook of a revision.
type Hook struct {
	Name     string `json:"name,omitempty"`
	Kind     string `json:"kind,omitempty"`
	Manifest string `json:"manifest,omitempty"`
	Weight   int    `json:"weight,omitempty"`
}

// Chart is the chart a revision was rendered from, as Helm stores it: without its subcharts and without the raw
// values.yaml (only the parsed default values).
type Chart struct {
	Metadata *Metadata `json:"-"`
	// MetadataJSON is Chart.yaml as Helm stored it, every field kept, so a rebuilt chart's Chart.yaml says exactly
	// what the original did.
	MetadataJSON json.RawMessage `json:"metadata"`
	Templates    []*File         `json:"templates"`
	Values       map[string]any  `json:"values"`
	Schema       []byte          `json:"schema"`
	Files        []*File         `json:"files"`
}

// Metadata is the part of Chart.yaml rotate-key reads.
type Metadata struct {
	Name         string        `json:"name"`
	Version      string        `json:"version"`
	AppVersion   string        `json:"appVersion,omitempty"`
	Type         string        `json:"type,omitempty"`
	Dependencies []*Dependency `json:"dependencies,omitempty"`
}

// Dependency is one entry of Chart.yaml's dependencies.
type Dependency struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Alias   string `json:"alias,omitempty"`
}

// File is a chart file: its path inside the chart and its bytes (base64 in the record).
type File struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
}

// UnmarshalJSON decodes the chart and, from the same bytes, the metadata fields rotate-key reads.
func (c *Chart) UnmarshalJSON(data []byte) error {
	type plain Chart // no UnmarshalJSON: no recursion
	if err := json.Unmarshal(data, (*plain)(c)); err != nil {
		return err
	}
	if len(c.MetadataJSON) == 0 || string(c.MetadataJSON) == "null" {
		c.Metadata, c.MetadataJSON = nil, nil
		return nil
	}
	c.Metadata = &Metadata{}
	return json.Unmarshal(c.MetadataJSON, c.Metadata)
}

// Summary is what rotate-key needs to know about a release: never its rendered manifest (which holds key material
// when a chart renders the keyring Secret).
type Summary struct {
	Name         string `json:"name"`
	Namespace    string `json:"namespace"`
	Revision     int    `json:"revision"`
	Status       string `json:"status"`
	Chart        string `json:"chart"`
	ChartVersion string `json:"chartVersion"`
	AppVersion   string `json:"appVersion,omitempty"`
	Description  string `json:"description,omitempty"`
}

// maxRecordBytes bounds a decompressed release record, so a corrupt or hostile record cannot exhaust memory.
const maxRecordBytes = 64 << 20

// Summarize extracts the Summary of rel.
func Summarize(rel *Release) Summary {
	s := Summary{Name: rel.Name, Namespace: rel.Namespace, Revision: rel.Version}
	if rel.Info != nil {
		s.Status = rel.Info.Status
		s.Description = rel.Info.Description
	}
	if rel.Chart != nil && rel.Chart.Metadata != nil {
		s.Chart, s.ChartVersion, s.AppVersion = rel.Chart.Metadata.Name, rel.Chart.Metadata.Version, rel.Chart.Metadata.AppVersion
	}
	return s
}

// Decode turns the `release` field of a Helm storage record (base64 of gzipped JSON; older records are not gzipped)
// into a release.
func Decode(data []byte) (*Release, error) {
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(data)))
	n, err := base64.StdEncoding.Decode(raw, data)
	if err != nil {
		return nil, fmt.Errorf("release record is not base64: %w", err)
	}
	raw = raw[:n]
	if bytes.HasPrefix(raw, []byte{0x1f, 0x8b, 0x08}) {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("release record is not gzip: %w", err)
		}
		defer zr.Close()
		raw, err = io.ReadAll(io.LimitReader(zr, maxRecordBytes+1))
		if err != nil {
			return nil, fmt.Errorf("release record: %w", err)
		}
		if len(raw) > maxRecordBytes {
			return nil, fmt.Errorf("release record larger than %d bytes once decompressed", maxRecordBytes)
		}
	}
	var rel Release
	if err := json.Unmarshal(raw, &rel); err != nil {
		return nil, fmt.Errorf("release record is not a Helm release: %w", err)
	}
	return &rel, nil
}
