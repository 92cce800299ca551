package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kstat/kstat/internal/client"
)

func init() {
	subcommands = append(subcommands, newGetCommand)
}

func newGetCommand() *cobra.Command {
	var opts daemonOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get PATH",
		Short: "Print one value or control of a running daemon",
		Long: `get prints the file PATH of a running daemon's tree, such as
self/uptime_seconds or kstat/counter, as the daemon reads it at this moment:
from the statistics filesystem mounted at --mount, or, when nothing is
mounted there, over the control socket --socket (root, or the daemon's
--control-socket.group). "kstat tree" lists the paths.`,
		Example: `  kstat get self/uptime_seconds
  kstat get --json memory/available
  kstat get --mount /tmp/kstat kstat/start`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completePaths(&opts, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := opts.open(cmd, "get", args[0])
			if err != nil {
				return err
			}
			e, err := c.Get(client.Clean(opts.mount, args[0]))
			if err != nil {
				return err
			}
			if asJSON {
				b, err := json.MarshalIndent(e, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
				return err
			}
			text := e.Text
			if !strings.HasSuffix(text, "\n") {
				text += "\n"
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), text)
			return err
		},
	}
	opts.addFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the file as JSON: path, kind, text, value, type, unit, mode, help (as GET /api/v1/values/PATH)")
	return cmd
}
