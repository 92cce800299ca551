package fusefs_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// FuzzWrite writes arbitrary bytes through a real mount, to a clearable
// value and to a control: a write either does what its text asks (a zero
// in C's strtoll syntax clears the value; a number from 0 to 100 sets the
// limit) or fails with EINVAL and changes nothing. No write may crash the
// server or leave it unable to serve the next one.
func FuzzWrite(f *testing.F) {
	tr := newTree(f)
	tr.logs = &logBuffer{}
	_, dir := mount(f, tr.root, tr.logs)
	for _, s := range []string{"0", "0\n", " 0x0 ", "-0", "1", "abc", "100", "101", "\x00", "0\x000", "99999999999999999999", "\xff\xfe", "  42\n\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > 4096 {
			return // an empty write sends no WRITE request; a long one is split by the kernel
		}
		text := strings.TrimSpace(string(data))

		tr.top.Store(0, 42)
		err := os.WriteFile(filepath.Join(dir, "counter"), data, 0)
		v, perr := strconv.ParseInt(text, 0, 64)
		zero := perr == nil && v == 0 && !strings.ContainsAny(text, "_oObB")
		switch {
		case zero && (err != nil || tr.top.Load(0) != 0):
			t.Fatalf("writing %q to the counter: %v, value %d; want it cleared", data, err, tr.top.Load(0))
		case !zero && (!errors.Is(err, syscall.EINVAL) || tr.top.Load(0) != 42):
			t.Fatalf("writing %q to the counter: %v, value %d; want EINVAL and 42 kept", data, err, tr.top.Load(0))
		}

		tr.limit.Store(10)
		err = os.WriteFile(filepath.Join(dir, "limit"), data, 0)
		n, perr := strconv.ParseUint(text, 10, 64)
		ok := perr == nil && n <= 100
		switch {
		case ok && (err != nil || tr.limit.Load() != n):
			t.Fatalf("writing %q to limit: %v, limit %d; want %d", data, err, tr.limit.Load(), n)
		case !ok && (!errors.Is(err, syscall.EINVAL) || tr.limit.Load() != 10):
			t.Fatalf("writing %q to limit: %v, limit %d; want EINVAL and 10 kept", data, err, tr.limit.Load())
		}
		if got := read(t, filepath.Join(dir, "gauge")); got != "-5\n" {
			t.Fatalf("after writing %q, gauge reads %q", data, got)
		}
	})
}
