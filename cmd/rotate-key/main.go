// Command rotate-key is the helm rotate-key plugin: the CLI behind `helm rotate-key`, the post-renderer
// rotate-key-guard (when invoked under that name, or as `rotate-key guard`), and the entrypoint of the chart's
// in-cluster hook Jobs.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/tracebloc/helm-rotate-key/internal/cli"
)

func main() {
	// Ctrl-C or a Job's SIGTERM cancels the context: a run stops between requests, its state resumable, instead
	// of dying in the middle of one.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := cli.NewRootCommand(cli.StdStreams(), os.Getenv)
	root.SetArgs(cli.Args(os.Args))
	code := cli.Report(root.ExecuteContext(ctx), os.Stderr)
	stop()
	os.Exit(code)
}
