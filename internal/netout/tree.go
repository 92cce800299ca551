package netout

// The tree KSTAT makes: its directory from the root, a source per family
// and the names of their values. The daemon and AddValues build the
// sources and tables with these constants and views find values through
// them, so a rename changes both at once.
const (
	Dir     = "kstat"                // nout, cgroups_dropped, programs/ and a source per family
	DirIPv4 = Dir + "/" + familyIPv4 // IPv4's counts
	DirIPv6 = Dir + "/" + familyIPv6 // IPv6's counts

	familyIPv4 = "ipv4" // IPv4's name: its source and its label value
	familyIPv6 = "ipv6" // IPv6's name

	ValueNout           = "nout"            // in Dir
	ValueCgroupsDropped = "cgroups_dropped" // in Dir
	ValueTCPPackets     = "tcp_packets"     // in each family, as are the five below
	ValueTCPBytes       = "tcp_bytes"
	ValueUDPPackets     = "udp_packets"
	ValueUDPBytes       = "udp_bytes"
	ValueOtherPackets   = "other_packets"
	ValueOtherBytes     = "other_bytes"

	KnobCounter = "counter" // in Dir: the step nout is published in
	KnobStart   = "start"   // in Dir: 1 while the program counts
)
