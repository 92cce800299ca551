package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// kstat man --dir writes a page per command, each with the command's
// synopsis and every flag; man(1) renders them; kstat man COMMAND prints
// the same page.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	if _, stderr, err := runKstat(t, "man", "--dir", dir); err != nil {
		t.Fatalf("kstat man --dir: %v: %s", err, stderr)
	}
	var walk func(c *cobra.Command)
	pages := 0
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c.Name() != "kstat" {
			return
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1"
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("no page for %q: %v", c.CommandPath(), err)
			return
		}
		pages++
		page := string(b)
		if !strings.Contains(page, ".SH SYNOPSIS") {
			t.Errorf("%s: no synopsis", name)
		}
		c.NonInheritedFlags().VisitAll(func(f *pflag.Flag) {
			if !f.Hidden && !strings.Contains(page, `\fB--`+f.Name+`\fP`) {
				t.Errorf("%s: flag --%s missing", name, f.Name)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCommand())
	if pages < 10 {
		t.Errorf("only %d pages", pages)
	}
	out, stderr, err := runKstat(t, "man", "trace")
	if err != nil {
		t.Fatalf("kstat man trace: %v: %s", err, stderr)
	}
	want, _ := os.ReadFile(filepath.Join(dir, "kstat-trace.1"))
	if out != string(want) {
		t.Error("kstat man trace differs from kstat-trace.1 of --dir")
	}
	// man renders it: the NAME line and a column of the trace table.
	cmd := exec.Command("man", "-l", filepath.Join(dir, "kstat-trace.1"))
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat")
	if text, err := cmd.Output(); err == nil {
		if s := strings.Join(strings.Fields(string(text)), " "); !strings.Contains(s, "kstat-trace - Show per-process") || !strings.Contains(s, "MAX_WAIT_US") {
			t.Errorf("man -l kstat-trace.1:\n%s", s)
		}
	} else if _, look := exec.LookPath("man"); look == nil {
		t.Errorf("man -l: %v", err)
	}
	if _, _, err := runKstat(t, "man", "nosuch"); err == nil {
		t.Error("kstat man nosuch succeeded")
	}
}
