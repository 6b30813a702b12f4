// Package charts embeds the rotate-key library chart, so that the binary can rebuild a release's chart for the
// hook path: Helm does not store a chart's dependencies in the release record (see internal/release.Rebuild).
package charts

import "embed"

// Library is the rotate-key library chart (charts/rotate-key), as files under "rotate-key/".
//
//go:embed all:rotate-key
var Library embed.FS

// LibraryName is the library chart's name, which is also the values key it reads (rotate-key: in the parent).
const LibraryName = "rotate-key"
