package irqcount

// Dir is the tree directory, from the root, that the daemon gives
// AddValues: the programs' own cost goes in Dir/programs/. The eBPF counts
// themselves go beside the /proc counts, in collector.DirIRQ and
// collector.DirSoftirq (collector.LineBPFEntries).
const Dir = "irqcount"
