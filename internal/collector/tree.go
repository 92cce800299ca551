package collector

// The tree the collectors make: the paths of their directories from the
// root (Dir…) and the names of their values. The collectors build their
// sources and tables with these constants and views find values through
// them, so a rename changes both at once and a view left behind does not
// compile. TestTreeConstantsResolve resolves every one against a tree built
// from fixtures.
const (
	DirSystem    = "system"                    // uptime, stat and loadavg values
	DirMemory    = "memory"                    // meminfo's totals
	DirBlock     = "block"                     // meminfo's page cache and buffers
	DirMM        = "mm"                        // meminfo's slab and page tables
	DirSlabinfo  = DirMM + "/" + slabinfoDir   // slabinfo's totals; a source per cache
	DirNet       = "net"                       // sockstat's IPv4 and overall values
	DirSockstat6 = DirNet + "/" + sockstat6Dir // sockstat's IPv6 values
	DirNetDev    = DirNet + "/" + netdevDir    // netdev's sums; a source per interface
	DirIRQ       = "irq"                       // interrupts: a source per line
	DirSoftirq   = "softirq"                   // softirqs: a source per vector
	slabinfoDir  = "slabinfo"                  // the last element of DirSlabinfo
	sockstat6Dir = "sockstat6"                 // the last element of DirSockstat6
	netdevDir    = "dev"                       // the last element of DirNetDev
)

// Values of system/.
const (
	SystemUptimeSeconds   = "uptime_seconds"
	SystemIdleSeconds     = "idle_seconds"
	SystemContextSwitches = "context_switches"
	SystemForks           = "forks"
	SystemInterrupts      = "interrupts_total"
	SystemSoftirqs        = "softirqs_total"
	SystemProcsRunning    = "procs_running"
	SystemProcsBlocked    = "procs_blocked"
	SystemLoad1           = "load1"
	SystemLoad5           = "load5"
	SystemLoad15          = "load15"
)

// Values of memory/, block/ and mm/.
const (
	MemoryTotal         = "total"
	MemoryFree          = "free"
	MemoryAvailable     = "available"
	BlockBuffers        = "buffers"
	BlockCached         = "cached"
	BlockDirty          = "dirty"
	BlockWriteback      = "writeback"
	MMSlab              = "slab"
	MMSlabReclaimable   = "slab_reclaimable"
	MMSlabUnreclaimable = "slab_unreclaimable"
	MMPageTables        = "page_tables"
)

// Values of net/ (all of them) and net/sockstat6/ (the per-protocol ones
// IPv6 has: TCPInuse, UDPInuse, UDPLiteInuse, RawInuse, FragInuse,
// FragMemoryBytes).
const (
	SockSocketsUsed     = "sockets_used"
	SockTCPInuse        = "tcp_inuse"
	SockTCPOrphan       = "tcp_orphan"
	SockTCPTimeWait     = "tcp_tw"
	SockTCPAlloc        = "tcp_alloc"
	SockTCPMemPages     = "tcp_mem_pages"
	SockTCPMemBytes     = "tcp_mem_bytes"
	SockUDPInuse        = "udp_inuse"
	SockUDPMemPages     = "udp_mem_pages"
	SockUDPMemBytes     = "udp_mem_bytes"
	SockUDPLiteInuse    = "udplite_inuse"
	SockRawInuse        = "raw_inuse"
	SockFragInuse       = "frag_inuse"
	SockFragMemoryBytes = "frag_memory_bytes"
)

// Values of net/dev/ (sums) and net/dev/<interface>/.
const (
	NetdevRxBytes    = "rx_bytes"
	NetdevRxPackets  = "rx_packets"
	NetdevRxErrors   = "rx_errors"
	NetdevRxDropped  = "rx_dropped"
	NetdevTxBytes    = "tx_bytes"
	NetdevTxPackets  = "tx_packets"
	NetdevTxErrors   = "tx_errors"
	NetdevTxDropped  = "tx_dropped"
	NetdevTxQueueLen = "tx_queue_len"
)

// Values of mm/slabinfo/ (SlabCaches, SlabActiveObjects, SlabTotalBytes)
// and mm/slabinfo/<cache>/ (SlabActiveObjects, SlabObjects,
// SlabObjectSize, SlabTotalBytes).
const (
	SlabCaches        = "caches"
	SlabActiveObjects = "active_objects"
	SlabObjects       = "objects"
	SlabObjectSize    = "object_size"
	SlabTotalBytes    = "total_bytes"
)

// Values of irq/<line>/ and softirq/<vector>/: the /proc count, the eBPF
// count once AddEventCounts ran, and (IRQ lines only) the description.
const (
	LineCount       = "count"
	LineBPFEntries  = "bpf_entries"
	LineDescription = "description"
)

// The names of the /proc collectors, as registered (--collector.NAME) and
// as their Status and the Registry's Get know them.
const (
	NameUptime     = "uptime"
	NameStat       = "stat"
	NameLoadavg    = "loadavg"
	NameInterrupts = "interrupts"
	NameSoftirqs   = "softirqs"
	NameMeminfo    = "meminfo"
	NameNetdev     = "netdev"
	NameSockstat   = "sockstat"
	NameSlabinfo   = "slabinfo"
)
