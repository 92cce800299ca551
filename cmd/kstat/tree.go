package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kstat/kstat/internal/bufstat"
	"github.com/kstat/kstat/internal/client"
	"github.com/kstat/kstat/internal/netout"
	"github.com/kstat/kstat/internal/server"
)

const defaultMount = "/run/kstat"

func init() {
	subcommands = append(subcommands, newTreeCommand)
}

func newTreeCommand() *cobra.Command {
	var opts daemonOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "tree [PATH]",
		Short: "Print the statistics tree of a running daemon",
		Long: `tree prints a running daemon's tree below PATH (the whole tree by default):
every source (a directory) and every value or control, with its current
value, its type (u64, s32, bool, f64, ... or control), its unit and its file
mode. Mode 0644 values are cumulative counters that "kstat set PATH 0"
clears; 0444 ones are read-only. It reads the statistics filesystem mounted
at --mount or, when nothing is mounted there, the control socket --socket.`,
		Example: `  kstat tree
  kstat tree self
  kstat tree --json net/dev
  kstat tree --mount /tmp/kstat net`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completePaths(&opts, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			rel := ""
			if len(args) == 1 {
				rel = args[0]
			}
			c, err := opts.open(cmd, "tree", rel)
			if err != nil {
				return err
			}
			clean := client.Clean(opts.mount, rel)
			src, err := c.Tree(clean)
			if err != nil {
				return err
			}
			if asJSON {
				b, err := json.MarshalIndent(src, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
				return err
			}
			top := clean + "/"
			if m, ok := strings.CutPrefix(c.Via(), "mount "); ok && clean == "" {
				top = m + "/"
			}
			return printTree(cmd.OutOrStdout(), top, src)
		},
	}
	opts.addFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the tree as JSON, as GET /api/v1/tree/PATH gives it")
	return cmd
}

// daemonOptions are the flags of a command that talks to a running
// daemon: where its mount and its control socket are.
type daemonOptions struct {
	mount  string
	socket string
}

func (o *daemonOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.mount, "mount", defaultMount, `where "kstat serve" mounted the statistics filesystem`)
	cmd.Flags().StringVar(&o.socket, "socket", defaultSocket, `the control socket of "kstat serve" (--control-socket), used when nothing is mounted at --mount; needs root or the daemon's --control-socket.group`)
}

// open finds the daemon, saying on stderr what it waits for when that
// takes a moment.
func (o *daemonOptions) open(cmd *cobra.Command, op, path string) (*client.Client, error) {
	done := waitNotice(cmd.ErrOrStderr(), "kstat %s: asking the daemon at %s or %s ...", op, o.mount, o.socket)
	c, err := client.Open(o.mount, o.socket)
	done()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, client.Clean(o.mount, path), err)
	}
	return c, nil
}

// waitNotice prints a line to w if the caller has not called the returned
// func within a second, so that a command never waits in silence.
func waitNotice(w io.Writer, format string, args ...any) func() {
	t := time.AfterFunc(time.Second, func() { fmt.Fprintf(w, format+"\n", args...) })
	return func() { t.Stop() }
}

// printTree prints a source and everything below it: sources first line,
// then each value or control with its first line, type, unit and mode,
// subordinate sources after the values, indented.
func printTree(w io.Writer, top string, src *server.Source) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVALUE\tTYPE\tUNIT\tMODE")
	fmt.Fprintf(tw, "%s\t\t\t\t%04o\n", top, 0o755)
	writeSource(tw, src, 1)
	return tw.Flush()
}

func writeSource(w io.Writer, s *server.Source, depth int) {
	indent := strings.Repeat("  ", depth)
	type line struct{ name, value, typ, unit, mode string }
	var lines []line
	for _, v := range s.Values {
		text := v.Text
		if string(v.Value) == "null" {
			text = "<unavailable>"
		}
		lines = append(lines, line{v.Name, text, v.Type, v.Unit, v.Mode})
	}
	for _, c := range s.Controls {
		value := c.Text
		lines = append(lines, line{c.Name, value, "control", "", c.Mode})
	}
	sortLines := func(a, b int) bool { return lines[a].name < lines[b].name }
	for i := 1; i < len(lines); i++ { // insertion sort: a handful of lines
		for j := i; j > 0 && sortLines(j, j-1); j-- {
			lines[j], lines[j-1] = lines[j-1], lines[j]
		}
	}
	for _, l := range lines {
		fmt.Fprintf(w, "%s%s\t%s\t%s\t%s\t%s\n", indent, l.name, short(l.value), l.typ, l.unit, l.mode)
	}
	for _, sub := range s.Sources {
		fmt.Fprintf(w, "%s%s/\t\t\t\t%04o\n", indent, sub.Name, 0o755)
		writeSource(w, sub, depth+1)
	}
}

// short is a value's first line, at most 48 characters.
func short(value string) string {
	value = strings.TrimRight(value, "\n")
	if first, _, multi := strings.Cut(value, "\n"); multi {
		value = first + " ..."
	}
	if len(value) > 48 {
		value = value[:45] + "..."
	}
	return value
}

// completePaths completes tree paths (and, with values, a knob's or a
// sort column's values as the second argument) from the running daemon.
func completePaths(o *daemonOptions, values bool) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		c, err := client.Open(o.mount, o.socket)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		if len(args) == 1 && values {
			return knobValues(c, client.Clean(o.mount, args[0])), cobra.ShellCompDirectiveNoFileComp
		}
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		dir := toComplete
		if i := strings.LastIndexByte(dir, '/'); i >= 0 {
			dir = dir[:i]
		} else {
			dir = ""
		}
		src, err := c.Tree(dir)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		prefix := ""
		if dir != "" {
			prefix = dir + "/"
		}
		var out []string
		for _, s := range src.Sources {
			out = append(out, prefix+s.Name+"/")
		}
		for _, v := range src.Values {
			if !values || v.Mode == "0644" {
				out = append(out, prefix+v.Name)
			}
		}
		for _, ctl := range src.Controls {
			if !values || ctl.Mode != "0444" {
				out = append(out, prefix+ctl.Name)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
}

// knobValues are the values worth offering for path: 0 and 1 for a
// switch, the sort columns its help lists, 0 for a counter.
func knobValues(c *client.Client, path string) []string {
	e, err := c.Get(path)
	if err != nil {
		return nil
	}
	if e.Kind == "value" {
		return []string{"0"}
	}
	help := e.Help
	switch {
	case strings.Contains(help, "sort column"):
		if _, list, ok := strings.Cut(help, ": "); ok {
			return strings.Split(list, ", ")
		}
	case strings.HasPrefix(help, "1 ") || strings.Contains(help, "0 or 1") || strings.Contains(help, "write 1") || path == netout.Dir+"/"+netout.KnobStart || strings.HasSuffix(path, "/enable"):
		return []string{"0", "1"}
	case path == bufstat.ControlName:
		return []string{"debug", "nodebug"}
	}
	return nil
}
