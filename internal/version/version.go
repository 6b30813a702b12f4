// Package version reports which build of rotate-key is running. Operators paste it into bug reports, and a rotation
// records it as the actor's version, because one rotation spans 90 days and several plugin releases.
package version

import (
	"runtime"
	"runtime/debug"
)

// Version is set at link time (-X github.com/tracebloc/helm-rotate-key/internal/version.Version=v1.2.3) by the
// Makefile and the plugin's install script. Builds without it fall back to the module version Go recorded.
var Version = ""

// Info is what `rotate-key version` prints.
type Info struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the build information of the running binary.
func Get() Info {
	info := Info{Version: Version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				info.Revision = s.Value
			}
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	return info
}
