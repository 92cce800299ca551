package main

import (
	"github.com/spf13/cobra"

	"github.com/kstat/kstat/internal/client"
)

func init() {
	subcommands = append(subcommands, newSetCommand)
}

func newSetCommand() *cobra.Command {
	var opts daemonOptions
	cmd := &cobra.Command{
		Use:   "set PATH VALUE",
		Short: "Write a control, or clear a counter, of a running daemon",
		Long: `set writes VALUE to the file PATH of a running daemon's tree. A control
(kstat/start, kstat/counter, telemetry/log_interval, tracer/pids, ...) takes
a new setting, checked before anything changes; a cumulative value (mode
0644) takes only 0, which clears it (an aggregate clears every value it
sums). Read-only files (mode 0444) refuse. A refused value leaves the old
one in place, and set prints the daemon's reason.

set goes through the control socket --socket when it belongs to the daemon
of --mount, or when nothing is mounted (root, or the daemon's
--control-socket.group); otherwise it writes the file of the mount. VALUE
may start with "-" (tracer/pids -1234 stops tracing pid 1234).`,
		Example: `  kstat set self/fuse_reads 0
  kstat set kstat/start 1
  kstat set tracer/pids 1234
  kstat set tracer/pids -1234`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completePaths(&opts, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := opts.open(cmd, "set", args[0])
			if err != nil {
				return err
			}
			return c.Set(client.Clean(opts.mount, args[0]), args[1])
		},
	}
	opts.addFlags(cmd)
	// Flags end at PATH, so that a VALUE such as -1234 is not a flag.
	cmd.Flags().SetInterspersed(false)
	return cmd
}
