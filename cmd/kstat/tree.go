package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/statsfs/fusefs"
)

const defaultMount = "/run/kstat"

func init() {
	subcommands = append(subcommands, newTreeCommand)
}

func newTreeCommand() *cobra.Command {
	var mount string
	cmd := &cobra.Command{
		Use:   "tree [PATH]",
		Short: "Print the statistics tree of a running daemon",
		Long: `tree prints the statistics filesystem that "kstat serve" mounted at --mount:
every source (a directory) and every value or control file below PATH (the
whole tree by default), with its current value, its type (u64, s32, bool,
f64, ... or control), its unit and its file mode. Mode 0644 values are
cumulative counters that "kstat set PATH 0" clears; 0444 ones are read-only.`,
		Example: `  kstat tree
  kstat tree self
  kstat tree --mount /tmp/kstat net`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rel := ""
			if len(args) == 1 {
				rel = args[0]
			}
			return printTree(cmd.OutOrStdout(), mount, rel)
		},
	}
	addMountFlag(cmd, &mount)
	return cmd
}

// addMountFlag adds --mount to a command that reads a daemon's mount.
func addMountFlag(cmd *cobra.Command, mount *string) {
	cmd.Flags().StringVar(mount, "mount", defaultMount, `where "kstat serve" mounted the statistics filesystem`)
}

// statsPath returns the file of rel in the mount and rel cleaned. rel may
// also be a path inside the mount; it cannot climb out of it.
func statsPath(mount, rel string) (file, clean string) {
	if abs, err := filepath.Abs(mount); err == nil {
		mount = abs
	}
	if r, ok := strings.CutPrefix(rel, mount+"/"); ok {
		rel = r
	}
	clean = strings.TrimPrefix(filepath.Clean("/"+rel), "/")
	return filepath.Join(mount, clean), clean
}

// explain turns an error on a file of the mount into a message that says
// what to do.
func explain(op, rel, mount string, err error) error {
	if rel == "" {
		rel = "/"
	}
	switch {
	case errors.Is(err, syscall.ENOTCONN):
		return fmt.Errorf("%s %s: %w: the daemon that mounted %s has died; run \"kstat serve\" again, it recovers the mount", op, rel, syscall.ENOTCONN, mount)
	case errors.Is(err, fs.ErrNotExist):
		abs, _ := filepath.Abs(mount)
		if typ, ok := fusefs.MountedAt(abs); !ok || typ != "fuse."+fusefs.Type {
			return fmt.Errorf("%s %s: no statistics filesystem is mounted at %s: is \"kstat serve\" running? (or pass --mount DIR)", op, rel, mount)
		}
		return fmt.Errorf("%s %s: no such file in %s (\"kstat tree\" lists them)", op, rel, mount)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%s %s: %w: the file is read-only", op, rel, syscall.EACCES)
	}
	return fmt.Errorf("%s %s: %w", op, rel, err)
}

// xattr returns the extended attribute name of path, or "".
func xattr(path, name string) string {
	buf := make([]byte, 256)
	n, err := unix.Getxattr(path, name, buf)
	if errors.Is(err, unix.ERANGE) {
		if n, err = unix.Getxattr(path, name, nil); err == nil {
			buf = make([]byte, n)
			n, err = unix.Getxattr(path, name, buf)
		}
	}
	if err != nil || n < 0 {
		return ""
	}
	return string(buf[:n])
}

func printTree(w io.Writer, mount, rel string) error {
	top, rel := statsPath(mount, rel)
	st, err := os.Stat(top)
	if err != nil {
		return explain("tree", rel, mount, err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVALUE\tTYPE\tUNIT\tMODE")
	if !st.IsDir() {
		treeLine(tw, top, rel, st)
		return tw.Flush()
	}
	name := rel + "/"
	if rel == "" {
		name = mount + "/"
	}
	fmt.Fprintf(tw, "%s\t\t\t\t%04o\n", name, st.Mode().Perm())
	if err := treeDir(tw, top, 1); err != nil {
		tw.Flush()
		return explain("tree", rel, mount, err)
	}
	return tw.Flush()
}

// treeDir prints the entries of dir, indented by depth, directories last.
func treeDir(w io.Writer, dir string, depth int) error {
	es, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	indent := strings.Repeat("  ", depth)
	var dirs []fs.DirEntry
	for _, e := range es {
		if e.IsDir() {
			dirs = append(dirs, e)
			continue
		}
		st, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // removed since the listing
		}
		treeLine(w, filepath.Join(dir, e.Name()), indent+e.Name(), st)
	}
	for _, e := range dirs {
		fmt.Fprintf(w, "%s%s/\t\t\t\t%04o\n", indent, e.Name(), 0o755)
		if err := treeDir(w, filepath.Join(dir, e.Name()), depth+1); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// treeLine prints one file: its value's first line, type, unit and mode.
func treeLine(w io.Writer, path, name string, st fs.FileInfo) {
	value := "-"
	if st.Mode().Perm()&0o444 != 0 {
		b, err := os.ReadFile(path)
		switch {
		case err != nil:
			value = "<" + errText(err) + ">"
		default:
			value = strings.TrimRight(string(b), "\n")
			if first, _, multi := strings.Cut(value, "\n"); multi {
				value = first + " ..."
			}
			if len(value) > 48 {
				value = value[:45] + "..."
			}
		}
	}
	typ := xattr(path, fusefs.XattrType)
	if typ == "" {
		typ = "-"
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%04o\n", name, value, typ, xattr(path, fusefs.XattrUnit), st.Mode().Perm())
}

// errText is the errno text of err, without the path.
func errText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}
