// Package selfstat names the daemon's self/ source: its directory from
// the tree's root and its values. The daemon builds the source and its
// table with these constants, and views and clients find the values
// through them, so a rename changes both at once.
package selfstat

// Dir is self/'s path from the root.
const Dir = "self"

// The values of self/, in the daemon's table order.
const (
	UptimeSeconds    = "uptime_seconds"
	Goroutines       = "goroutines"
	HeapBytes        = "heap_bytes"
	OpenFDs          = "open_fds"
	GCCycles         = "gc_cycles"
	FUSELookups      = "fuse_lookups"
	FUSEReaddirs     = "fuse_readdirs"
	FUSEOpens        = "fuse_opens"
	FUSEReads        = "fuse_reads"
	FUSEWrites       = "fuse_writes"
	FUSERefused      = "fuse_refused"
	StartTimeSeconds = "start_time_seconds"
)
