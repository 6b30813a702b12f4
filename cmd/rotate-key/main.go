// Command rotate-key is the helm rotate-key plugin: the CLI behind `helm rotate-key`, the post-renderer
// rotate-key-guard (when invoked under that name, or as `rotate-key guard`), and the entrypoint of the chart's
// in-cluster hook Jobs.
package main

import (
	"os"

	"github.com/tracebloc/helm-rotate-key/internal/cli"
)

func main() {
	root := cli.NewRootCommand(cli.StdStreams(), os.Getenv)
	root.SetArgs(cli.Args(os.Args))
	os.Exit(cli.Report(root.Execute(), os.Stderr))
}
