package main

import (
	"context"
	"os"
	"runtime"
	"runtime/metrics"
	"time"

	"github.com/kstat/kstat/internal/selfstat"
	"github.com/kstat/kstat/statsfs"
)

// The self/ source: the daemon's own health, and the requests its
// statistics mount served.
const (
	selfUptime = iota
	selfGoroutines
	selfHeap
	selfFDs
	selfGC
	selfLookups
	selfReaddirs
	selfOpens
	selfReads
	selfWrites
	selfRefused
	selfStart
)

var selfTable = statsfs.NewTable(
	statsfs.Value{Name: selfstat.UptimeSeconds, Help: "Seconds since the daemon started", Type: statsfs.F64, Unit: "seconds", Flag: statsfs.Floating},
	statsfs.Value{Name: selfstat.Goroutines, Help: "Goroutines the daemon runs", Type: statsfs.U64, Flag: statsfs.Floating},
	statsfs.Value{Name: selfstat.HeapBytes, Help: "Bytes of live and not yet swept heap objects", Type: statsfs.U64, Unit: "bytes", Flag: statsfs.Floating},
	statsfs.Value{Name: selfstat.OpenFDs, Help: "File descriptors the daemon has open", Type: statsfs.U64, Flag: statsfs.Floating},
	statsfs.Value{Name: selfstat.GCCycles, Help: "Garbage collections since the daemon started", Type: statsfs.U64, ReadOnly: true},
	statsfs.Value{Name: selfstat.FUSELookups, Help: "Names the statistics mount looked up (write 0 to clear)", Type: statsfs.U64, Unit: "requests"},
	statsfs.Value{Name: selfstat.FUSEReaddirs, Help: "Directory listings the statistics mount served (write 0 to clear)", Type: statsfs.U64, Unit: "requests"},
	statsfs.Value{Name: selfstat.FUSEOpens, Help: "Files opened in the statistics mount (write 0 to clear)", Type: statsfs.U64, Unit: "requests"},
	statsfs.Value{Name: selfstat.FUSEReads, Help: "Read requests the statistics mount served (write 0 to clear)", Type: statsfs.U64, Unit: "requests"},
	statsfs.Value{Name: selfstat.FUSEWrites, Help: "Write requests the statistics mount served (write 0 to clear)", Type: statsfs.U64, Unit: "requests"},
	statsfs.Value{Name: selfstat.FUSERefused, Help: "Opens and writes the statistics mount refused (write 0 to clear)", Type: statsfs.U64, Unit: "requests"},
	statsfs.Value{Name: selfstat.StartTimeSeconds, Help: "When the daemon started, in seconds since the Unix epoch", Type: statsfs.F64, Unit: "seconds", Flag: statsfs.Floating},
)

func init() {
	features = append(features, feature{name: "self", start: startSelf})
}

// selfRecord reads the daemon's health when a value is read; the FUSE
// request counters can be cleared.
type selfRecord struct {
	d     *daemon
	start time.Time
}

func (r *selfRecord) counter(i int) interface {
	Load() uint64
	Store(uint64)
} {
	req := r.d.fuse
	switch i {
	case selfLookups:
		return &req.Lookups
	case selfReaddirs:
		return &req.Readdirs
	case selfOpens:
		return &req.Opens
	case selfReads:
		return &req.Reads
	case selfWrites:
		return &req.Writes
	case selfRefused:
		return &req.Refused
	}
	return nil
}

// Load reads value i now.
func (r *selfRecord) Load(i int) uint64 {
	switch i {
	case selfUptime:
		return statsfs.FloatBits(time.Since(r.start).Seconds())
	case selfGoroutines:
		return uint64(runtime.NumGoroutine())
	case selfHeap:
		return runtimeMetric("/memory/classes/heap/objects:bytes")
	case selfFDs:
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			return 0
		}
		return uint64(len(fds) - 1) // less the one ReadDir had open
	case selfGC:
		return runtimeMetric("/gc/cycles/total:gc-cycles")
	case selfStart:
		return statsfs.FloatBits(float64(r.start.UnixNano()) / 1e9)
	}
	if c := r.counter(i); c != nil {
		return c.Load()
	}
	return 0
}

// Clear zeroes a FUSE request counter; the other values are read-only.
func (r *selfRecord) Clear(i int) {
	if c := r.counter(i); c != nil {
		c.Store(0)
	}
}

func runtimeMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

func startSelf(_ context.Context, d *daemon) error {
	src := statsfs.NewSource(selfstat.Dir)
	if err := src.AddValues(selfTable, &selfRecord{d: d, start: time.Now()}, 0); err != nil {
		return err
	}
	d.root.AddSubordinate(src)
	return nil
}
