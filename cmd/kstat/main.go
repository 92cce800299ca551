// Command kstat shows what the kernel's buffers, network stack, allocator,
// locks and interrupts are doing: as a mounted statistics filesystem, a
// report, Prometheus metrics and an HTTP API.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// globalOptions are the flags every subcommand shares.
type globalOptions struct {
	procRoot string // where procfs is mounted; tests point it at fixtures
	sysRoot  string // where sysfs is mounted
}

var global globalOptions

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "kstat",
		Short: "Linux kernel statistics and telemetry",
		Long: `kstat shows what the kernel's buffers, network stack, allocator, locks and
interrupts are doing. "kstat serve" keeps a tree of statistics, mounts it as a
filesystem (one directory per source, one file per value), and serves it as
Prometheus metrics and a JSON API; the other commands read it or the kernel
directly.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&global.procRoot, "proc", "/proc", "where procfs is mounted")
	root.PersistentFlags().StringVar(&global.sysRoot, "sys", "/sys", "where sysfs is mounted")
	for _, add := range subcommands {
		root.AddCommand(add())
	}
	return root
}

// subcommands holds a constructor per subcommand; each subcommand's file
// appends its own in init.
var subcommands []func() *cobra.Command

func main() {
	if err := newRootCommand().ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "kstat:", err)
		os.Exit(1)
	}
}
