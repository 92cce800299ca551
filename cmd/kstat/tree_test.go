package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestTreeGetSet runs the client commands against a live daemon.
func TestTreeGetSet(t *testing.T) {
	d := startDaemon(t)

	out, stderr, err := runKstat(t, "tree", "--mount", d.Mount, "self")
	if err != nil {
		t.Fatalf("tree: %v\n%s", err, stderr)
	}
	for _, re := range []string{
		`(?m)^NAME\s+VALUE\s+TYPE\s+UNIT\s+MODE$`,
		`(?m)^self/\s+0755$`,
		`(?m)^  uptime_seconds\s+[0-9.e+-]+\s+f64\s+seconds\s+0444$`,
		`(?m)^  heap_bytes\s+[0-9]+\s+u64\s+bytes\s+0444$`,
		`(?m)^  fuse_reads\s+[0-9]+\s+u64\s+requests\s+0644$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("tree output lacks %s:\n%s", re, out)
		}
	}
	whole, _, err := runKstat(t, "tree", "--mount", d.Mount)
	if err != nil || !strings.Contains(whole, "\n  self/") || !strings.HasPrefix(strings.SplitN(whole, "\n", 3)[1], d.Mount+"/") {
		t.Errorf("whole tree: %v\n%s", err, whole)
	}

	// get prints what the file holds.
	out, stderr, err = runKstat(t, "get", "--mount", d.Mount, "self/goroutines")
	if err != nil {
		t.Fatalf("get: %v\n%s", err, stderr)
	}
	if g, err := strconv.Atoi(strings.TrimSpace(out)); err != nil || g < 2 {
		t.Errorf("get self/goroutines printed %q", out)
	}
	// A path inside the mount works too.
	if out, _, err := runKstat(t, "get", "--mount", d.Mount, d.Path("self/gc_cycles")); err != nil || strings.TrimSpace(out) == "" {
		t.Errorf("get with a full path: %v %q", err, out)
	}

	// set clears a counter, refuses other text and read-only files.
	reads := d.Path("self/fuse_reads")
	if _, stderr, err := runKstat(t, "set", "--mount", d.Mount, "self/fuse_reads", "0"); err != nil {
		t.Fatalf("set 0: %v\n%s", err, stderr)
	}
	if v := readNumber(t, reads); v > 3 {
		t.Errorf("fuse_reads = %v after kstat set 0", v)
	}
	for _, tc := range []struct{ path, value, want string }{
		{"self/fuse_reads", "abc", `kstat: set self/fuse_reads: invalid argument: the file refused "abc" (a value file takes only 0, which clears it)`},
		{"self/fuse_reads", "7", `kstat: set self/fuse_reads: invalid argument: the file refused "7"`},
		{"self/uptime_seconds", "0", `kstat: set self/uptime_seconds: permission denied: the file is read-only (mode 0444)`},
		{"self/nosuch", "0", `kstat: set self/nosuch: no such file in ` + d.Mount},
		{"self", "0", `kstat: set self: is a source (a directory), not a value`},
	} {
		before := readNumber(t, reads)
		_, stderr, err := runKstat(t, "set", "--mount", d.Mount, tc.path, tc.value)
		if err == nil || !strings.Contains(stderr, tc.want) {
			t.Errorf("set %s %s: %v, stderr %q; want %q", tc.path, tc.value, err, stderr, tc.want)
		}
		if after := readNumber(t, reads); after < before {
			t.Errorf("refused set %s %s changed fuse_reads from %v to %v", tc.path, tc.value, before, after)
		}
	}
	if !strings.Contains(d.Stderr(), `path=self/fuse_reads op=write`) {
		t.Errorf("the daemon did not log the refused write:\n%s", d.Stderr())
	}
}

// TestClientWithoutDaemon checks the hint when nothing is mounted.
func TestClientWithoutDaemon(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "nothing")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"get", "--mount", empty, "self/uptime_seconds"},
		{"set", "--mount", empty, "kstat/start", "1"},
		{"tree", "--mount", empty, "self"},
	} {
		_, stderr, err := runKstat(t, args...)
		if err == nil || !strings.Contains(stderr, "no statistics filesystem is mounted at "+empty+`: is "kstat serve" running?`) {
			t.Errorf("%s: %v, stderr %q", strings.Join(args, " "), err, stderr)
		}
	}
}
