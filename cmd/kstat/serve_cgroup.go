package main

import (
	"context"
	"strconv"
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
				"how many cgroups keep their sums of the tracer's per-process counts in tracer/cgroup/ (and a cgroup label in /metrics), the most active first; the others are counted in tracer/cgroup/groups_dropped (-1: no limit)")
		},
		start: func(ctx context.Context, d *daemon) error { return startCgroup(ctx, d, cgroupOpts) },
	})
}

// startCgroup sums the tracer's per-process values per cgroup v2 group
// (the group each process is in now, from /proc/PID/cgroup) every second
// into tracer/cgroup/<path>/, within the --cgroup.max budget.
func startCgroup(ctx context.Context, d *daemon, opts cgroupOptions) error {
	if _, err := cgroup.FindMount(d.paths.Proc); err != nil {
		return err
	}
	var groups *cgroup.Groups
	d.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			tr := d.root.Subordinate("tracer")
			if tr == nil {
				continue
			}
			sums := cgroup.Sums{}
			var values []statsfs.Value
			var readings []statsfs.Reading
			for _, src := range tr.Subordinates() {
				pid, err := strconv.Atoi(src.Name())
				if src.Label() != "pid" || err != nil {
					continue
				}
				path, err := cgroup.ProcPath(d.paths.Proc, pid)
				if err != nil {
					continue // exited since the tracer saw it
				}
				readings, values = readings[:0], values[:0]
				for _, v := range src.Values() {
					if a := v.Value().Aggr; a == statsfs.Sum || a == statsfs.Max {
						values = append(values, *v.Value())
						readings = append(readings, v.Read())
					}
				}
				sums.Add(values, path, readings)
			}
			if len(sums) == 0 && groups == nil {
				continue
			}
			if groups == nil {
				parent := statsfs.NewSource("cgroup")
				var err error
				if groups, err = cgroup.NewGroups(parent, values, opts.max); err != nil {
					d.log.Error("cgroup: per-cgroup sums not shown", "err", err)
					return
				}
				tr.AddSubordinate(parent)
			}
			groups.Update(sums)
		}
	})
	return nil
}
