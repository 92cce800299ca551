package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"kernel.org/pub/linux/libs/security/libcap/cap"

	"github.com/kstat/kstat/internal/caps"
	"github.com/kstat/kstat/internal/knob"
	"github.com/kstat/kstat/internal/netns"
	"github.com/kstat/kstat/internal/netout"
	"github.com/kstat/kstat/statsfs"
)

// kstatOptions are the flags of the KSTAT feature of "kstat serve".
type kstatOptions struct {
	start   bool   // start counting at launch
	netns   string // attach in this network namespace ("" for the daemon's)
	cgroups bool   // count per socket cgroup too
}

var kstatOpts kstatOptions

func init() {
	features = append(features, feature{
		name: "kstat",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&kstatOpts.start, "kstat-start", false, "start counting outgoing packets at launch (as writing 1 to kstat/start)")
			fs.BoolVar(&kstatOpts.cgroups, "kstat-cgroups", true,
				"count outgoing packets also by the cgroup of the sending socket (cgroup/<path>/netout_packets and netout_bytes); "+
					"on this machine about 30 ns of the program's 130-170 ns per packet (docs/PERFORMANCE.md); --kstat-cgroups=false loads the program without that code "+
					"and the per-cgroup packet values and kstat/cgroups_dropped are absent (feature/kstat-cgroups says off)")
			fs.StringVar(&kstatOpts.netns, "netns", "", "count the packets of this network namespace (/run/netns/NAME or /proc/PID/ns/net) instead of the daemon's own")
		},
		start: func(ctx context.Context, d *daemon) error { return startKstat(ctx, d, kstatOpts) },
	})
}

// startKstat loads the netfilter program (not attached: loading the
// daemon is not starting the service) and adds the source kstat with nout,
// the per-family counts and the knobs counter and start. At shutdown the
// program is detached and unloaded; if the daemon is killed, the kernel
// drops the fd-held links and the program with the process.
func startKstat(ctx context.Context, d *daemon, opts kstatOptions) error {
	if !d.collectorOn("kstat") {
		if opts.start {
			return fmt.Errorf("--kstat-start with --no-collector.kstat: give one of them")
		}
		d.Off("kstat", "disabled by --no-collector.kstat")
		return nil
	}
	if opts.netns != "" {
		if err := netns.Do(opts.netns, func() error { return nil }); err != nil {
			return fmt.Errorf("--netns: %w", err)
		}
	}
	c, err := netout.Load(netout.Options{NoCgroups: !opts.cgroups})
	if err != nil {
		if opts.start || opts.netns != "" {
			return err // asked for with --kstat-start or --netns
		}
		d.Degrade("kstat", err)
		return nil
	}
	if opts.cgroups {
		d.states.set("kstat-cgroups", nil)
	} else {
		d.Off("kstat-cgroups", "--kstat-cgroups=false: outgoing packets are not counted per cgroup")
	}
	s, err := netout.NewService(c, opts.netns)
	if err != nil {
		c.Close()
		return err
	}
	d.netoutSvc = s
	src := statsfs.NewSource(netout.Dir)
	if err := addKstat(d, src, s, opts.netns != ""); err != nil {
		c.Close()
		return err
	}
	d.root.AddSubordinate(src)
	d.collectors.Add(s.Collector())
	if opts.start {
		if err := s.Start(); err != nil {
			c.Close()
			return fmt.Errorf("--kstat-start: %w", err)
		}
		d.log.Info("kstat: counting outgoing packets", "netns", opts.netns)
	}
	d.Go(func() {
		<-ctx.Done()
		if err := s.Stop(); err != nil {
			d.log.Error("kstat: detaching", "err", err)
		}
		if err := c.Close(); err != nil {
			d.log.Error("kstat: unloading", "err", err)
		}
	})
	return nil
}

// addKstat adds the values and registers the knobs of s in src; inNetns
// says whether s attaches in another network namespace.
func addKstat(d *daemon, src *statsfs.Source, s *netout.Service, inNetns bool) error {
	if err := s.AddValues(src); err != nil {
		return err
	}
	counter := knob.Uint("counter",
		"nout is published after every counter outgoing TCP packets (1 to 2^32); a new value takes effect at once",
		1, netout.MaxStep, s.Step, s.SetStep)
	if err := d.knobs.Add(netout.Dir+"/"+netout.KnobCounter, src, counter); err != nil {
		return err
	}
	// Creating the link from the loaded program needs no capability;
	// entering another network namespace (setns) needs CAP_SYS_ADMIN.
	var need []cap.Value
	if inNetns {
		need = append(need, cap.SYS_ADMIN)
	}
	start := knob.Bool("start",
		"1 attaches the program and counts outgoing packets; 0 stops and detaches it (nout is kept)",
		s.Running, func(on bool) error {
			if on {
				err := caps.Explain(s.Start(), need...)
				if err == nil {
					d.log.Info("kstat: started")
				}
				return err
			}
			err := s.Stop()
			if err == nil {
				d.log.Info("kstat: stopped")
			}
			return err
		})
	return d.knobs.Add(netout.Dir+"/"+netout.KnobStart, src, trackEnable(d, "kstat", start))
}
