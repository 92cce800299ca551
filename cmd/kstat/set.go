package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kstat/kstat/statsfs/fusefs"
)

func init() {
	subcommands = append(subcommands, newSetCommand)
}

func newSetCommand() *cobra.Command {
	var mount string
	cmd := &cobra.Command{
		Use:   "set PATH VALUE",
		Short: "Write a control, or clear a counter, of a running daemon",
		Long: `set writes VALUE to the file PATH of the statistics filesystem that
"kstat serve" mounted at --mount. A control (kstat/start, kstat/counter,
telemetry/log_interval, ...) takes a new setting, checked before anything
changes; a cumulative value (mode 0644) takes only 0, which clears it (an
aggregate clears every value it sums). Read-only files (mode 0444) refuse.
A refused value leaves the old one in place.`,
		Example: `  kstat set self/fuse_reads 0
  kstat set kstat/start 1`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return setFile(mount, args[0], args[1])
		},
	}
	addMountFlag(cmd, &mount)
	return cmd
}

func setFile(mount, path, value string) error {
	file, rel := statsPath(mount, path)
	st, err := os.Stat(file)
	if err != nil {
		return explain("set", rel, mount, err)
	}
	if st.IsDir() {
		return fmt.Errorf("set %s: is a source (a directory), not a value", rel)
	}
	if st.Mode().Perm()&0o222 == 0 {
		return fmt.Errorf("set %s: %w: the file is read-only (mode %04o)", rel, syscall.EACCES, st.Mode().Perm())
	}
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		return explain("set", rel, mount, err)
	}
	_, err = f.WriteString(value + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EINVAL):
		hint := ""
		if xattr(file, fusefs.XattrType) != "control" {
			hint = " (a value file takes only 0, which clears it)"
		}
		return fmt.Errorf("set %s: %w: the file refused %q%s", rel, syscall.EINVAL, value, hint)
	}
	return explain("set", rel, mount, err)
}
