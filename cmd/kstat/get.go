package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func init() {
	subcommands = append(subcommands, newGetCommand)
}

func newGetCommand() *cobra.Command {
	var mount string
	cmd := &cobra.Command{
		Use:   "get PATH",
		Short: "Print one value or control of a running daemon",
		Long: `get prints the file PATH of the statistics filesystem that "kstat serve"
mounted at --mount, such as self/uptime_seconds or kstat/counter, as the
daemon reads it at this moment. "kstat tree" lists the paths.`,
		Example: `  kstat get self/uptime_seconds
  kstat get --mount /tmp/kstat kstat/start`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file, rel := statsPath(mount, args[0])
			st, err := os.Stat(file)
			if err != nil {
				return explain("get", rel, mount, err)
			}
			if st.IsDir() {
				return fmt.Errorf("get %s: is a source (a directory); \"kstat tree %s\" prints its values", rel, rel)
			}
			b, err := os.ReadFile(file)
			if err != nil {
				return explain("get", rel, mount, err)
			}
			text := string(b)
			if !strings.HasSuffix(text, "\n") {
				text += "\n"
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), text)
			return err
		},
	}
	addMountFlag(cmd, &mount)
	return cmd
}
