package tracer

// The tree the tracer makes: its directory from the root (the daemon
// names the source it gives NewService Dir), a source per traced process
// (its pid) and the names of the values views read. The tables are built
// with these constants and views find values through them, so a rename
// changes both at once.
const (
	Dir = "tracer"

	ValueForks            = "forks" // in a process and, summed, in Dir
	ValueExecs            = "execs" // likewise, as are the ones below
	ValueKmallocCalls     = "kmalloc_calls"
	ValueAllocatedBytes   = "allocated_bytes"
	ValueFreedBytes       = "freed_bytes"
	ValueOutstandingBytes = "outstanding_bytes"
	ValueLockContentions  = "lock_contentions"
	ValueLockWaitSeconds  = "lock_wait_seconds"
	ControlComm           = "comm" // a process's command name, a control
)
