package main

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestBufstatFile reads the mounted bufstat file from 50 goroutines at
// once and checks every copy against /proc/meminfo, then writes the
// control words and garbage.
func TestBufstatFile(t *testing.T) {
	d := startDaemon(t, "--collector.slabinfo")
	path := d.Path("bufstat")
	memTotal := procMeminfoKB(t)["MemTotal"] / 1024

	start := time.Now().UnixMilli()
	const readers = 50
	texts := make([]string, readers)
	errs := make([]error, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Go(func() {
			b, err := os.ReadFile(path)
			texts[i], errs[i] = string(b), err
		})
	}
	wg.Wait()
	end := time.Now().UnixMilli()
	for i, text := range texts {
		if errs[i] != nil {
			t.Fatalf("reader %d: %v", i, errs[i])
		}
		for _, want := range []string{
			"Kernel Buffer Statistics Report\nGenerated: ", "\n=== Network Buffer Statistics ===\nSocket buffer allocation: ",
			"\nPer-device buffer statistics:\n", "  lo: rx_buffers=", "\n=== Block Buffer Statistics ===\nBuffers: ",
			"\n=== Memory Management Statistics ===\nSlab memory: ", "\nSlab caches: ",
			"\n=== Overall Buffer Usage Summary ===\nTotal memory: " + strconv.FormatUint(memTotal, 10) + " kB\n",
		} {
			if !strings.Contains(text, want) {
				t.Fatalf("reader %d: no %q in\n%s", i, want, text)
			}
		}
		if strings.Contains(text, "unavailable") {
			t.Errorf("reader %d: a section failed as root:\n%s", i, text)
		}
		m := generatedLine.FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("reader %d: no Generated line", i)
		}
		// Made fresh on each read: generated during the reads.
		if ms, _ := strconv.ParseInt(m[1]+m[2], 10, 64); ms < start || ms > end {
			t.Errorf("reader %d: Generated %s.%s outside the reads (%d..%d ms)", i, m[1], m[2], start, end)
		}
	}

	write := func(text string) error {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteString(text)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	if err := write("debug\n"); err != nil {
		t.Fatalf("write debug: %v", err)
	}
	waitForLog(t, d, `level=DEBUG msg="debug logging on"`)
	if err := write("nodebug\n"); err != nil {
		t.Fatalf("write nodebug: %v", err)
	}
	waitForLog(t, d, "debug logging off")
	err := write("verbose\n")
	if !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("write verbose: %v, want EINVAL", err)
	}
	waitForLog(t, d, `bufstat accepts \"debug\" or \"nodebug\", not \"verbose\"`)
	if b, err := os.ReadFile(path); err != nil || !strings.HasPrefix(string(b), "Kernel Buffer Statistics Report") {
		t.Fatalf("reading after the writes: %v", err)
	}
}

// waitForLog waits up to 5s for text in the daemon's log.
func waitForLog(t *testing.T, d *testDaemon, text string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(d.Stderr(), text); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not log %q:\n%s", text, d.Stderr())
		}
	}
}
