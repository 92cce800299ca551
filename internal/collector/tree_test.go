package collector

import (
	"path/filepath"
	"testing"

	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/statsfs"
)

// treeHandle is one exported constant of tree.go and where it must
// resolve: a directory (value "") or a value of dir, or of one of dir's
// instances when instance is set.
type treeHandle struct {
	ident      string
	dir, value string
	instance   bool
}

var treeHandles = []treeHandle{
	{"DirSystem", DirSystem, "", false},
	{"DirMemory", DirMemory, "", false},
	{"DirBlock", DirBlock, "", false},
	{"DirMM", DirMM, "", false},
	{"DirSlabinfo", DirSlabinfo, "", false},
	{"DirNet", DirNet, "", false},
	{"DirSockstat6", DirSockstat6, "", false},
	{"DirNetDev", DirNetDev, "", false},
	{"DirIRQ", DirIRQ, "", false},
	{"DirSoftirq", DirSoftirq, "", false},

	{"SystemUptimeSeconds", DirSystem, SystemUptimeSeconds, false},
	{"SystemIdleSeconds", DirSystem, SystemIdleSeconds, false},
	{"SystemContextSwitches", DirSystem, SystemContextSwitches, false},
	{"SystemForks", DirSystem, SystemForks, false},
	{"SystemInterrupts", DirSystem, SystemInterrupts, false},
	{"SystemSoftirqs", DirSystem, SystemSoftirqs, false},
	{"SystemProcsRunning", DirSystem, SystemProcsRunning, false},
	{"SystemProcsBlocked", DirSystem, SystemProcsBlocked, false},
	{"SystemLoad1", DirSystem, SystemLoad1, false},
	{"SystemLoad5", DirSystem, SystemLoad5, false},
	{"SystemLoad15", DirSystem, SystemLoad15, false},

	{"MemoryTotal", DirMemory, MemoryTotal, false},
	{"MemoryFree", DirMemory, MemoryFree, false},
	{"MemoryAvailable", DirMemory, MemoryAvailable, false},
	{"BlockBuffers", DirBlock, BlockBuffers, false},
	{"BlockCached", DirBlock, BlockCached, false},
	{"BlockDirty", DirBlock, BlockDirty, false},
	{"BlockWriteback", DirBlock, BlockWriteback, false},
	{"MMSlab", DirMM, MMSlab, false},
	{"MMSlabReclaimable", DirMM, MMSlabReclaimable, false},
	{"MMSlabUnreclaimable", DirMM, MMSlabUnreclaimable, false},
	{"MMPageTables", DirMM, MMPageTables, false},

	{"SockSocketsUsed", DirNet, SockSocketsUsed, false},
	{"SockTCPInuse", DirNet, SockTCPInuse, false},
	{"SockTCPInuse", DirSockstat6, SockTCPInuse, false},
	{"SockTCPOrphan", DirNet, SockTCPOrphan, false},
	{"SockTCPTimeWait", DirNet, SockTCPTimeWait, false},
	{"SockTCPAlloc", DirNet, SockTCPAlloc, false},
	{"SockTCPMemPages", DirNet, SockTCPMemPages, false},
	{"SockTCPMemBytes", DirNet, SockTCPMemBytes, false},
	{"SockUDPInuse", DirNet, SockUDPInuse, false},
	{"SockUDPInuse", DirSockstat6, SockUDPInuse, false},
	{"SockUDPMemPages", DirNet, SockUDPMemPages, false},
	{"SockUDPMemBytes", DirNet, SockUDPMemBytes, false},
	{"SockUDPLiteInuse", DirNet, SockUDPLiteInuse, false},
	{"SockUDPLiteInuse", DirSockstat6, SockUDPLiteInuse, false},
	{"SockRawInuse", DirNet, SockRawInuse, false},
	{"SockRawInuse", DirSockstat6, SockRawInuse, false},
	{"SockFragInuse", DirNet, SockFragInuse, false},
	{"SockFragInuse", DirSockstat6, SockFragInuse, false},
	{"SockFragMemoryBytes", DirNet, SockFragMemoryBytes, false},
	{"SockFragMemoryBytes", DirSockstat6, SockFragMemoryBytes, false},

	{"NetdevRxBytes", DirNetDev, NetdevRxBytes, true},
	{"NetdevRxPackets", DirNetDev, NetdevRxPackets, true},
	{"NetdevRxErrors", DirNetDev, NetdevRxErrors, true},
	{"NetdevRxDropped", DirNetDev, NetdevRxDropped, true},
	{"NetdevTxBytes", DirNetDev, NetdevTxBytes, true},
	{"NetdevTxPackets", DirNetDev, NetdevTxPackets, true},
	{"NetdevTxErrors", DirNetDev, NetdevTxErrors, true},
	{"NetdevTxDropped", DirNetDev, NetdevTxDropped, true},
	{"NetdevTxQueueLen", DirNetDev, NetdevTxQueueLen, true},
	{"NetdevRxBytes", DirNetDev, NetdevRxBytes, false}, // the sums

	{"SlabCaches", DirSlabinfo, SlabCaches, false},
	{"SlabActiveObjects", DirSlabinfo, SlabActiveObjects, false},
	{"SlabActiveObjects", DirSlabinfo, SlabActiveObjects, true},
	{"SlabObjects", DirSlabinfo, SlabObjects, true},
	{"SlabObjectSize", DirSlabinfo, SlabObjectSize, true},
	{"SlabTotalBytes", DirSlabinfo, SlabTotalBytes, false},
	{"SlabTotalBytes", DirSlabinfo, SlabTotalBytes, true},

	{"LineCount", DirIRQ, LineCount, true},
	{"LineCount", DirSoftirq, LineCount, true},
	{"LineBPFEntries", DirIRQ, LineBPFEntries, true},
	{"LineBPFEntries", DirSoftirq, LineBPFEntries, true},
	{"LineDescription", DirIRQ, LineDescription, true},
}

// TestTreeConstantsResolve builds every registered collector on the e2e
// fixtures and resolves each exported constant of tree.go in that tree: a
// constant whose directory or value a collector no longer makes fails
// here, as does a collector name the registry does not know. It also
// checks that every exported constant of tree.go is checked, so a new one
// cannot go unchecked.
func TestTreeConstantsResolve(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "e2e")
	root := statsfs.NewSource("kstat")
	reg := &Registry{}
	cfg := Config{Paths: Paths{Proc: filepath.Join(dir, "proc"), Sys: filepath.Join(dir, "sys")}, Root: root}
	if err := reg.Build(cfg, func(string) bool { return true }); err != nil {
		t.Fatal(err)
	}
	reg.RefreshAll()
	for _, name := range []string{"interrupts", "softirqs"} {
		l, ok := reg.Get(name).(*Lines)
		if !ok {
			t.Fatalf("collector %s is not a *Lines", name)
		}
		none := func() (map[string]uint64, error) { return map[string]uint64{}, nil }
		if _, err := l.AddEventCounts("test", func(string) bool { return true }, none); err != nil {
			t.Fatal(err)
		}
	}

	listed := map[string]bool{}
	for _, h := range treeHandles {
		listed[h.ident] = true
		src := root.Find(h.dir)
		if src == nil {
			t.Errorf("%s: no %s/ in the tree", h.ident, h.dir)
			continue
		}
		if h.value == "" {
			continue
		}
		srcs := []*statsfs.Source{src}
		if h.instance {
			srcs = src.Subordinates()
		}
		found := false
		for _, s := range srcs {
			if _, err := s.LookupName(h.value); err == nil {
				found = true
				break
			}
		}
		if !found {
			where := h.dir + "/"
			if h.instance {
				where += "<instance>/"
			}
			t.Errorf("%s: no %s%s in the tree (%d sources looked at)", h.ident, where, h.value, len(srcs))
		}
	}
	names := map[string]string{
		"NameUptime": NameUptime, "NameStat": NameStat, "NameLoadavg": NameLoadavg,
		"NameInterrupts": NameInterrupts, "NameSoftirqs": NameSoftirqs, "NameMeminfo": NameMeminfo,
		"NameNetdev": NameNetdev, "NameSockstat": NameSockstat, "NameSlabinfo": NameSlabinfo,
	}
	for ident, name := range names {
		listed[ident] = true
		if c := reg.Get(name); c == nil || c.Name() != name {
			t.Errorf("%s: no collector %q in the registry", ident, name)
		}
	}
	for _, name := range testutil.ExportedConsts(t, "tree.go") {
		if !listed[name] {
			t.Errorf("tree.go exports %s, which treeHandles does not check", name)
		}
	}
}
