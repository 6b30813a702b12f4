package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// WriteReference writes the command reference (docs/cli.md) from the command tree, so the docs cannot drift from
// the binary: a test compares the file with this output.
func WriteReference(w io.Writer, root *cobra.Command) {
	fmt.Fprintf(w, "# Command reference\n\nGenerated from the commands themselves (`go test ./internal/cli -run TestCLIReference -update` rewrites it;\nthe test fails when it is stale). Exit codes: [exit-codes.md](exit-codes.md).\n")
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" && c.Parent() != root {
			return
		}
		fmt.Fprintf(w, "\n## %s\n\n%s\n\n```\n%s\n```\n", c.CommandPath(), c.Short, c.UseLine())
		if long := strings.TrimSpace(c.Long); long != "" && c != root {
			fmt.Fprintf(w, "\n```text\n%s\n```\n", long)
		}
		if flags := c.LocalNonPersistentFlags().FlagUsagesWrapped(110); flags != "" {
			fmt.Fprintf(w, "\nFlags:\n\n```text\n%s```\n", flags)
		}
		if c == root {
			fmt.Fprintf(w, "\nGlobal flags (every command; under Helm they come from helm's own flags and HELM_* variables):\n\n```text\n%s```\n", c.PersistentFlags().FlagUsagesWrapped(110))
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
