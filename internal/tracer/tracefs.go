package tracer

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// TracefsPath is where tracefs is mounted on current systems.
const TracefsPath = "/sys/kernel/tracing"

// EnsureTracefs makes sure tracefs is mounted at TracefsPath, mounting it
// when it is missing and the process may (root, as perf and bpftool do).
// kstat's own tracer uses tp_btf programs and needs no tracefs; classic
// tracepoints (perf events by tracepoint id) do.
func EnsureTracefs() error {
	if _, err := os.Stat(TracefsPath + "/events"); err == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("tracefs is not mounted at %s and mounting it needs root privileges: run `mount -t tracefs nodev %s`", TracefsPath, TracefsPath)
	}
	err := unix.Mount("nodev", TracefsPath, "tracefs", 0, "")
	if errors.Is(err, unix.EBUSY) { // mounted meanwhile
		err = nil
	}
	if err != nil {
		return fmt.Errorf("mounting tracefs at %s (kernel without CONFIG_TRACING support, or no CAP_SYS_ADMIN privilege): %w; try `mount -t tracefs nodev %s`", TracefsPath, err, TracefsPath)
	}
	return nil
}
