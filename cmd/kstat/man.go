package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func init() {
	subcommands = append(subcommands, newManCommand)
}

func newManCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "man [COMMAND...]",
		Short: "Print kstat's manual pages, generated from its commands and flags",
		Long: `man prints the manual page of kstat or of one of its commands (troff, for
man -l), or with --dir writes a page per command into a directory:
kstat.1, kstat-serve.1, kstat-trace.1 and so on. The pages are made from
the same text as --help. The repository keeps them in docs/man; CI checks
they match the commands.`,
		Example: `  kstat man trace | man -l -
  kstat man --dir /usr/local/share/man/man1
  go run ./cmd/kstat man --dir docs/man    # after changing a command or flag`,
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			root.DisableAutoGenTag = true // no generation date in the pages
			header := &doc.GenManHeader{Source: "kstat", Manual: "kstat manual"}
			if dir != "" {
				if len(args) > 0 {
					return fmt.Errorf("give a COMMAND or --dir, not both")
				}
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				return doc.GenManTree(root, header, dir)
			}
			target, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				return fmt.Errorf("no command %q: see kstat --help", strings.Join(args, " "))
			}
			return doc.GenMan(target, header, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "write a page per command into this directory")
	return cmd
}
