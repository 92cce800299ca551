package main

import (
	"context"
	"time"

	"github.com/spf13/pflag"

	"github.com/kstat/kstat/internal/cgroup"
	"github.com/kstat/kstat/statsfs"
)

// cgroupOptions are the flags of the per-cgroup view of "kstat serve".
type cgroupOptions struct {
	max int
}

var cgroupOpts cgroupOptions

func init() {
	features = append(features, feature{
		name: "cgroup",
		flags: func(fs *pflag.FlagSet) {
			fs.IntVar(&cgroupOpts.max, "cgroup.max", 20,
				"how many cgroups keep their counts in cgroup/ (and a cgroup label in /metrics), the most active first; the others are counted in cgroup/groups_dropped (-1: no limit)")
		},
		start: startCgroup,
	})
}

// The values of each cgroup/<path>/ source, in this order.
const (
	cgForks = iota
	cgThreads
	cgExecs
	cgExits
	cgPackets
	cgBytes
)

var cgroupValues = []statsfs.Value{
	{Name: "forks", Help: "Processes created by processes of the cgroup, counted by the tracer", Type: statsfs.U64, Aggr: statsfs.Sum},
	{Name: "threads", Help: "Threads created in the cgroup, counted by the tracer", Type: statsfs.U64, Aggr: statsfs.Sum},
	{Name: "execs", Help: "Successful execve calls in the cgroup, counted by the tracer", Type: statsfs.U64, Aggr: statsfs.Sum},
	{Name: "exits", Help: "Processes of the cgroup that exited, counted by the tracer", Type: statsfs.U64, Aggr: statsfs.Sum},
	{Name: "netout_packets", Help: "Outgoing packets of the cgroup's sockets, counted by KSTAT", Type: statsfs.U64, Unit: "packets", Aggr: statsfs.Sum},
	{Name: "netout_bytes", Help: "Bytes of the outgoing packets of the cgroup's sockets, counted by KSTAT", Type: statsfs.U64, Unit: "bytes", Aggr: statsfs.Sum},
}

// startCgroup adds cgroup/: every second, the tracer's per-cgroup process
// events and KSTAT's per-socket-cgroup packets (both counted in the
// kernel by cgroup v2 id) are resolved to the groups' paths below the
// cgroup2 mount and shown as cgroup/<path>/, within the --cgroup.max
// budget. Counts of a group that is gone (its id no longer resolves) are
// not shown. Without a cgroup2 mount the feature degrades.
func startCgroup(ctx context.Context, d *daemon) error {
	mount, err := cgroup.FindMount(d.paths.Proc)
	if err != nil {
		d.Degrade("cgroup", err)
		return nil
	}
	src := statsfs.NewSource("cgroup")
	values := cgroupValues
	if !kstatOpts.cgroups {
		values = values[:cgPackets] // --kstat-cgroups=false: no packet values
	}
	groups, err := cgroup.NewGroups(src, values, cgroupOpts.max)
	if err != nil {
		return err
	}
	d.root.AddSubordinate(src)
	res := cgroup.NewResolver(mount)
	// The second phase: the tracer's and KSTAT's first phases are done.
	// The first update is done before the daemon is ready, so that the
	// first scrape already holds the groups.
	d.Listen("cgroup", func() error {
		groups.Update(d.cgroupSums(res, len(values)))
		d.Go(func() {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				groups.Update(d.cgroupSums(res, len(values)))
			}
		})
		return nil
	})
	return nil
}

// cgroupSums reads the per-cgroup counts of the tracer and KSTAT, n of
// cgroupValues (KSTAT's only when n holds them).
func (d *daemon) cgroupSums(res *cgroup.Resolver, n int) cgroup.Sums {
	sums := cgroup.Sums{}
	add := func(id uint64, i int, v uint64) {
		if p, ok := res.Path(id); ok {
			sums.Add(n, p, i, float64(v))
		}
	}
	if d.tracerSvc != nil {
		m, err := d.tracerSvc.Cgroups()
		if err != nil {
			d.log.Debug("cgroup: reading the tracer's counts", "err", err)
		}
		for id, c := range m {
			add(id, cgForks, c.Forks)
			add(id, cgThreads, c.Threads)
			add(id, cgExecs, c.Execs)
			add(id, cgExits, c.Exits)
		}
	}
	if d.netoutSvc != nil && d.netoutSvc.Running() && n > cgBytes {
		m, err := d.netoutSvc.Counter().Cgroups()
		if err != nil {
			d.log.Debug("cgroup: reading KSTAT's counts", "err", err)
		}
		for id, c := range m {
			if id == 0 {
				continue // packets without a socket: in KSTAT's totals only
			}
			add(id, cgPackets, c.Packets)
			add(id, cgBytes, c.Bytes)
		}
	}
	return sums
}
