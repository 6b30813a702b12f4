// Package release decodes Helm release records (read from the cluster by package kube), read-only. Writes to a release always go
// through the user's own Helm CLI ($HELM_BIN) so that a Helm 3 release keeps being managed by Helm 3; see
// docs/decisions.md ("Helm SDK"). Records are decoded into helm.sh/helm/v4's release type, which reads the
// `sh.helm.release.v1` records that Helm 3 and Helm 4 both write.
package release

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"

	rspb "helm.sh/helm/v4/pkg/release/v1"
)

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
func Summarize(rel *rspb.Release) Summary {
	s := Summary{Name: rel.Name, Namespace: rel.Namespace, Revision: rel.Version}
	if rel.Info != nil {
		s.Status = rel.Info.Status.String()
		s.Description = rel.Info.Description
	}
	if rel.Chart != nil && rel.Chart.Metadata != nil {
		s.Chart, s.ChartVersion, s.AppVersion = rel.Chart.Metadata.Name, rel.Chart.Metadata.Version, rel.Chart.Metadata.AppVersion
	}
	return s
}

// Decode turns the `release` field of a Helm storage record (base64 of gzipped JSON; older records are not gzipped)
// into a release.
func Decode(data []byte) (*rspb.Release, error) {
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
	var rel rspb.Release
	if err := json.Unmarshal(raw, &rel); err != nil {
		return nil, fmt.Errorf("release record is not a Helm release: %w", err)
	}
	return &rel, nil
}
