package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"kernel.org/pub/linux/libs/security/libcap/cap"

	"github.com/kstat/kstat/internal/caps"
	"github.com/kstat/kstat/internal/knob"
	"github.com/kstat/kstat/internal/tracer"
	"github.com/kstat/kstat/statsfs"
)

// tracerOptions are the flags of the tracer feature of "kstat serve".
type tracerOptions struct {
	enable      bool
	maxProcs    uint32
	maxAllocs   uint32
	stackEvery  uint32
	sampleEvery uint32
	budget      float64
	window      time.Duration
	pids        []uint
}

var tracerOpts tracerOptions

func init() {
	features = append(features, feature{
		name: "tracer",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&tracerOpts.enable, "tracer", false,
				"attach the per-process tracer at launch (as writing 1 to tracer/enable); off by default because it costs CPU on every kernel allocation")
			fs.Uint32Var(&tracerOpts.maxProcs, "tracer-max-procs", 4096, "processes the tracer's map holds; events of more are dropped and counted (tracer/procs_dropped)")
			fs.Uint32Var(&tracerOpts.maxAllocs, "tracer-max-allocs", 65536, "outstanding allocations the tracer's map holds; more are counted in tracer/allocs_dropped")
			fs.Uint32Var(&tracerOpts.sampleEvery, "tracer-sample-every", tracer.DefaultSampleEvery,
				"track one allocation address in N for outstanding bytes, reported as estimates (N x the tracked ones; as tracer/sample_every); 1 tracks every one exactly, at a higher cost. Calls and allocated bytes are always exact")
			fs.Float64Var(&tracerOpts.budget, "tracer-budget", 0,
				"the most CPU the tracer's programs may use, as a share of all CPUs (0.01: 1%), measured by the kernel over --tracer-budget-window; "+
					"over it the tracer samples 4x fewer allocations per step (tracer/budget_level), and past level 5 detaches; 0: no budget")
			fs.DurationVar(&tracerOpts.window, "tracer-budget-window", 10*time.Second, "how long the tracer's cost is measured before the budget steps")
			fs.Uint32Var(&tracerOpts.stackEvery, "tracer-stack-every", 16, "capture the kernel stack of one allocation in N for leak reports (0: none; at most one in --tracer-sample-every); counts stay exact")
			fs.UintSliceVar(&tracerOpts.pids, "tracer-pid", nil, "trace only this process id (repeat for more; as writing +PID to tracer/pids)")
		},
		start: func(ctx context.Context, d *daemon) error { return startTracer(ctx, d, tracerOpts) },
	})
}

// startTracer adds tracer/ with its knobs (enable, pids, sort,
// stack_every), the report and functions_status files. The programs (and
// the named-function counters, where the kernel allows them) are attached
// only while tracer/enable is 1; at shutdown everything is detached.
func startTracer(ctx context.Context, d *daemon, opts tracerOptions) error {
	if !d.collectorOn("tracer") {
		if opts.enable {
			return fmt.Errorf("--tracer with --no-collector.tracer: give one of them")
		}
		d.Off("tracer", "disabled by --no-collector.tracer")
		return nil
	}
	pids := make([]uint32, len(opts.pids))
	for i, p := range opts.pids {
		pids[i] = uint32(p)
	}
	src := statsfs.NewSource(tracer.Dir)
	svc, err := tracer.NewService(src, tracer.Options{
		MaxProcs: opts.maxProcs, MaxAllocs: opts.maxAllocs, StackEvery: opts.stackEvery, SampleEvery: opts.sampleEvery,
		Pids: pids, Proc: d.paths.Proc,
	})
	if err != nil {
		return err
	}
	if opts.budget < 0 || opts.budget > 1 {
		return fmt.Errorf("--tracer-budget %v: give a share of CPU between 0 and 1", opts.budget)
	}
	svc.SetBudget(tracer.Budget{Share: opts.budget, Window: opts.window, Log: d.log})
	d.tracerSvc = svc
	for _, k := range svc.Knobs() {
		if k.Name == "enable" {
			k = trackEnable(d, "tracer", k, cap.BPF, cap.PERFMON)
		}
		if err := d.knobs.Add(tracer.Dir+"/"+k.Name, src, k); err != nil {
			return err
		}
	}
	if opts.enable {
		if err := svc.SetEnabled(true); err != nil {
			return fmt.Errorf("--tracer: %w", err)
		}
		d.log.Info("tracer: enabled", "functions", strings.TrimSpace(svc.FunctionsStatus()))
	}
	d.root.AddSubordinate(src)
	d.collectors.Add(svc.Collector())
	d.Go(func() {
		svc.Run(ctx, time.Second)
		if err := svc.Close(); err != nil {
			d.log.Error("tracer: detaching", "err", err)
		}
	})
	return nil
}

// trackEnable returns k (a feature's enable knob) with its outcome kept
// in the feature's state: an attach that fails marks the feature down
// with the reason (and the capabilities of need the daemon lacks), one
// that works marks it up. Refused input changes nothing.
func trackEnable(d *daemon, feature string, k *knob.Knob, need ...cap.Value) *knob.Knob {
	return knob.New(k.Name, k.Help, k.Get, func(text string) error {
		err := caps.Explain(k.Set(text), need...)
		switch {
		case err != nil && !errors.Is(err, statsfs.ErrInvalid):
			d.Degrade(feature, err)
		case err == nil:
			d.Up(feature)
		}
		return err
	})
}
