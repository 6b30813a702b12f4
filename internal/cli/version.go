package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/version"
)

// VersionOptions are the flags of `rotate-key version`.
type VersionOptions struct {
	Output  string
	streams Streams
}

func newVersionCommand(streams Streams) *cobra.Command {
	o := &VersionOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of rotate-key",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "text", "output format: text or json")
	return cmd
}

// Validate checks the output format.
func (o *VersionOptions) Validate() error {
	if o.Output != "text" && o.Output != "json" {
		return exitcode.Withf(exitcode.Usage, "--output %q is not supported: use text or json", o.Output)
	}
	return nil
}

// Run prints the version.
func (o *VersionOptions) Run() error {
	info := version.Get()
	if o.Output == "json" {
		enc := json.NewEncoder(o.streams.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	rev := ""
	if info.Revision != "" {
		rev = " (" + info.Revision + ")"
	}
	_, err := fmt.Fprintf(o.streams.Out, "rotate-key %s%s %s %s\n", info.Version, rev, info.GoVersion, info.Platform)
	return err
}
