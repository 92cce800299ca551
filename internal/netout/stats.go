package netout

import (
	"github.com/cilium/ebpf"

	"github.com/kstat/kstat/internal/bpf"
	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/statsfs"
)

// noutTable is the seed's published value.
var noutTable = statsfs.NewTable(statsfs.Value{
	Name: ValueNout,
	Help: "Outgoing TCP packets (IPv4 and IPv6), published in steps of counter packets; write 0 to clear",
	Type: statsfs.U64,
	Unit: "packets",
})

// familyTable is one family's counts, by protocol: packets then bytes.
var familyTable = statsfs.NewTable(
	statsfs.Value{Name: ValueTCPPackets, Help: "Outgoing TCP packets counted at LOCAL_OUT", Type: statsfs.U64, Unit: "packets", ReadOnly: true},
	statsfs.Value{Name: ValueTCPBytes, Help: "Bytes of outgoing TCP packets, IP headers included", Type: statsfs.U64, Unit: "bytes", ReadOnly: true},
	statsfs.Value{Name: ValueUDPPackets, Help: "Outgoing UDP packets counted at LOCAL_OUT", Type: statsfs.U64, Unit: "packets", ReadOnly: true},
	statsfs.Value{Name: ValueUDPBytes, Help: "Bytes of outgoing UDP packets, IP headers included", Type: statsfs.U64, Unit: "bytes", ReadOnly: true},
	statsfs.Value{Name: ValueOtherPackets, Help: "Outgoing packets of other protocols (ICMP, ...) counted at LOCAL_OUT", Type: statsfs.U64, Unit: "packets", ReadOnly: true},
	statsfs.Value{Name: ValueOtherBytes, Help: "Bytes of outgoing packets of other protocols, IP headers included", Type: statsfs.U64, Unit: "bytes", ReadOnly: true},
)

// dropTable holds netout's losses.
var dropTable = statsfs.NewTable(statsfs.Value{
	Name: ValueCgroupsDropped, Help: "Outgoing packets not counted per cgroup because the per-cgroup map was full (they are in the family counts)",
	Type: statsfs.U64, Unit: "packets", ReadOnly: true,
})

// noutRecord backs nout: reading syncs, clearing clears.
type noutRecord struct{ s *Service }

func (r noutRecord) Load(int) uint64 {
	n, _ := r.s.Nout() // a failed map read keeps the last published value
	return n
}

func (r noutRecord) Clear(int) { _ = r.s.ClearNout() }

// AddValues adds nout to src and a subordinate source per family
// ("ipv4", "ipv6") with the packets and bytes of each protocol, and
// cgroups_dropped when the program counts per cgroup. The
// families' counts come from one read of the program's map per
// collector.MaxAge, by the "kstat" collector (see Collector); nout syncs on
// every read, as the seed's does.
func (s *Service) AddValues(src *statsfs.Source) error {
	if err := src.AddValues(noutTable, noutRecord{s}, 0); err != nil {
		return err
	}
	var counts [Families]*statsfs.Counters
	for f := range counts {
		counts[f] = statsfs.NewCounters(familyTable)
	}
	drops := statsfs.NewCounters(dropTable)
	s.refresh = collector.NewRefresher("kstat", func() error {
		t, d, err := s.c.ReadAll()
		if err != nil {
			return err
		}
		drops.Store(0, d)
		st, err := bpf.Stats(map[string]*ebpf.Program{"netout": s.c.Program()})
		if err != nil {
			return err
		}
		s.progs.Update(st, s.timed())
		for f := range counts {
			for i := range familyTable.Len() {
				c := t[f][Proto(i/2)]
				v := c.Packets
				if i%2 == 1 {
					v = c.Bytes
				}
				counts[f].Store(i, v)
			}
		}
		return nil
	})
	if s.c.CountsCgroups() {
		if err := src.AddValues(dropTable, s.refresh.Record(drops), 0); err != nil {
			return err
		}
	}
	var err error
	if s.progs, err = bpf.NewProgView(src, s.refresh.Record); err != nil {
		return err
	}
	for f := Family(0); f < Families; f++ {
		sub := statsfs.NewInstance("family", f.String())
		if err := sub.AddValues(familyTable, s.refresh.Record(counts[f]), 0); err != nil {
			return err
		}
		src.AddSubordinate(sub)
	}
	return nil
}

// Collector is the read status of the families' counts, for the registry;
// nil before AddValues.
func (s *Service) Collector() collector.Collector { return s.refresh }
