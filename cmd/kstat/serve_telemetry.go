package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/spf13/pflag"

	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/internal/irqcount"
	"github.com/kstat/kstat/internal/knob"
	"github.com/kstat/kstat/internal/telemetry"
	"github.com/kstat/kstat/internal/tick"
	"github.com/kstat/kstat/statsfs"
)

// telemetryOptions are the flags of the telemetry feature of "kstat serve".
type telemetryOptions struct {
	ring     int    // snapshots kept
	interval string // first log_interval
	logJSON  string // JSON-lines log file; "" for none
	maxSize  int64  // rotate the log past this many bytes
	keep     int    // rotated logs kept
}

// The most snapshots --telemetry-ring accepts.
const maxTelemetryRing = 100000

var telemetryOpts telemetryOptions

func init() {
	features = append(features, feature{
		name: "telemetry",
		flags: func(fs *pflag.FlagSet) {
			fs.IntVar(&telemetryOpts.ring, "telemetry-ring", 10,
				fmt.Sprintf("how many telemetry snapshots telemetry/snapshots and /api/v1/snapshots keep (1 to %d)", maxTelemetryRing))
			fs.StringVar(&telemetryOpts.interval, "telemetry-interval", "5s",
				"first telemetry/log_interval: time between snapshots, like 5s or 250ms or whole seconds (100ms to 24h)")
			fs.StringVar(&telemetryOpts.logJSON, "log-json", "",
				"append every telemetry snapshot to this file as one JSON object per line (empty: no log)")
			fs.Int64Var(&telemetryOpts.maxSize, "log-json-max-size", 10<<20,
				"rotate the JSON log before it would pass this many bytes (0: never)")
			fs.IntVar(&telemetryOpts.keep, "log-json-keep", 3,
				"how many rotated JSON logs to keep, FILE.1 (newest) to FILE.N (0: drop a full log)")
		},
		start: func(ctx context.Context, d *daemon) error { return startTelemetry(ctx, d, telemetryOpts) },
	})
}

// startTelemetry adds system/, irq/ and softirq/ with the eBPF IRQ counts,
// the telemetry/ knobs and ring, GET /api/v1/snapshots, and the JSON log.
func startTelemetry(ctx context.Context, d *daemon, opts telemetryOptions) error {
	if opts.ring < 1 || opts.ring > maxTelemetryRing {
		return fmt.Errorf("--telemetry-ring %d: want 1 to %d snapshots", opts.ring, maxTelemetryRing)
	}
	if opts.maxSize < 0 || opts.keep < 0 {
		return fmt.Errorf("--log-json-max-size and --log-json-keep must not be negative")
	}
	sampler := telemetry.NewSampler(d.root, telemetry.NewRing(opts.ring), telemetry.MinInterval)
	interval := sampler.IntervalKnob()
	if err := interval.Set(opts.interval); err != nil {
		return fmt.Errorf("--telemetry-interval: %w", err)
	}

	if d.collectorOn("irqcount") {
		attachIRQCounts(ctx, d, d.collectors)
	} else {
		d.Off("irqcount", "disabled by --no-collector.irqcount")
	}

	tsrc := collector.Child(d.root, telemetry.Dir)
	for _, k := range []*knob.Knob{sampler.EnableKnob(), interval} {
		if err := d.knobs.Add(telemetry.Dir+"/"+k.Name, tsrc, k); err != nil {
			return err
		}
	}
	ring := sampler.Ring()
	if err := tsrc.AddControl(&statsfs.Control{
		Name: telemetry.ControlSnapshots,
		Help: "The telemetry ring: the last --telemetry-ring snapshots, oldest first, one block each",
		Read: ring.Text,
	}); err != nil {
		return err
	}
	d.mux.HandleFunc("GET /api/v1/snapshots", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		snaps := ring.Snapshots()
		if snaps == nil {
			snaps = []telemetry.Snapshot{}
		}
		if err := json.NewEncoder(w).Encode(snaps); err != nil {
			d.log.Debug("writing /api/v1/snapshots", "err", err)
		}
	})

	var jlog *telemetry.JSONLog
	if opts.logJSON != "" {
		var err error
		jlog, err = telemetry.OpenJSONLog(telemetry.LogOptions{Path: opts.logJSON, MaxSize: opts.maxSize, Keep: opts.keep})
		if err != nil {
			return fmt.Errorf("--log-json %s: %w", opts.logJSON, err)
		}
		w := &jsonLogWriter{d: d, l: jlog}
		if err := tsrc.AddValues(jsonLogTable, w, 0); err != nil {
			return err
		}
		sampler.OnSnapshot(w.write)
	}
	sp := d.sampling(ctx)
	sampler.Join(sp.clock)
	if jlog != nil {
		sp.afterStop(func() {
			if err := jlog.Close(); err != nil {
				d.log.Warn("closing the JSON log", "err", err)
			}
		})
	}
	d.log.Info("telemetry sampling", "interval", sampler.Interval(), "ring", opts.ring, "log_json", opts.logJSON)
	return nil
}

// jsonLogTable is telemetry/'s health of the JSON log, present only with
// --log-json.
var jsonLogTable = statsfs.NewTable(
	statsfs.Value{Name: "log_json_errors", Help: "Snapshots the --log-json file could not take (full disk, I/O error); the daemon goes on and the log resumes when writes work", Type: statsfs.U64, ReadOnly: true},
	statsfs.Value{Name: "log_json_failing", Help: "1 while writes to the --log-json file fail, 0 when the last one worked", Type: statsfs.U64, Flag: statsfs.Floating},
)

// jsonLogWriter appends snapshots to the JSON log, counts the ones it
// could not write, and logs the first error of a run of failures and the
// recovery.
type jsonLogWriter struct {
	d       *daemon
	l       *telemetry.JSONLog
	errors  atomic.Uint64
	failing atomic.Bool
	mu      sync.Mutex // orders the log lines of failure and recovery
}

// Load reads jsonLogTable's value i.
func (w *jsonLogWriter) Load(i int) uint64 {
	if i == 0 {
		return w.errors.Load()
	}
	if w.failing.Load() {
		return 1
	}
	return 0
}

func (w *jsonLogWriter) write(s telemetry.Snapshot) {
	err := w.l.Write(s)
	w.mu.Lock()
	defer w.mu.Unlock()
	was := w.failing.Load()
	switch {
	case err != nil && !was:
		w.d.log.Error("writing the JSON log failed; later failures are counted in telemetry/log_json_errors, not logged, until it works again", "err", err)
	case err == nil && was:
		w.d.log.Info("writing the JSON log works again", "failed_snapshots", w.errors.Load())
	}
	if err != nil {
		w.errors.Add(1)
	}
	w.failing.Store(err != nil)
}

// attachIRQCounts loads the eBPF IRQ and softirq counters and puts their
// counts beside the /proc ones. Without them the /proc values still work.
func attachIRQCounts(ctx context.Context, d *daemon, reg *collector.Registry) {
	irqs, softirqs := irqLines(reg)
	if irqs == nil && softirqs == nil {
		d.Off("irqcount", "the interrupts and softirqs collectors are off")
		return
	}
	if filepath.Clean(d.paths.Proc) != "/proc" {
		// The programs count this kernel's interrupts, not those of the
		// files under --proc: side by side they would mean nothing.
		d.log.Info("no eBPF IRQ counts: --proc is not /proc", "proc", d.paths.Proc)
		d.Off("irqcount", "--proc is not /proc")
		return
	}
	c, err := irqcount.Load()
	if err != nil {
		d.Degrade("irqcount", fmt.Errorf("no eBPF IRQ counts (irq/*/bpf_entries, softirq/*/bpf_entries); the /proc counts still work: %w", err))
		return
	}
	for _, f := range []struct {
		lines  *collector.Lines
		name   string
		covers func(string) bool
		read   func() (map[string]uint64, error)
	}{
		{irqs, "irqcount", numberedIRQ, c.IRQCounts},
		{softirqs, "softirqcount", func(string) bool { return true }, c.SoftirqCounts},
	} {
		if f.lines == nil {
			continue
		}
		r, err := f.lines.AddEventCounts(f.name, f.covers, f.read)
		if err != nil {
			d.log.Error("eBPF IRQ counts not added", "collector", f.name, "err", err)
			continue
		}
		d.collectors.Add(r)
	}
	// The programs' own cost, as the tracer's and netout's: in
	// irqcount/programs/<program>/.
	if r, err := c.AddValues(collector.Child(d.root, irqcount.Dir)); err != nil {
		d.log.Error("eBPF IRQ counters' own cost not added", "err", err)
	} else {
		if err := r.Refresh(); err != nil {
			d.log.Warn("reading the eBPF IRQ counters' run-time statistics", "err", err)
		}
		d.collectors.Add(r)
	}
	d.Go(func() {
		<-ctx.Done()
		if err := c.Close(); err != nil {
			d.log.Warn("detaching the eBPF IRQ counters", "err", err)
		}
	})
	d.Up("irqcount")
	d.log.Info("eBPF IRQ counters attached", "programs", "tp_btf/irq_handler_entry, tp_btf/softirq_entry")
}

// irqLines returns the interrupts and softirqs collectors of reg (nil
// when not built), to which the eBPF counts are added.
func irqLines(reg *collector.Registry) (irqs, softirqs *collector.Lines) {
	irqs, _ = reg.Get(collector.NameInterrupts).(*collector.Lines)
	softirqs, _ = reg.Get(collector.NameSoftirqs).(*collector.Lines)
	return irqs, softirqs
}

// numberedIRQ reports whether a /proc/interrupts line is an IRQ number,
// which irq_handler_entry reports; LOC, NMI and the other architecture
// lines do not go through it.
func numberedIRQ(line string) bool {
	_, err := strconv.ParseUint(line, 10, 32)
	return err == nil
}

// samplers is the daemon's one clock of periodic readers of the tree (the
// telemetry sampler, the dashboard's history): readers due at the same
// tick share one pass over the tree, so each collector is read once.
type samplers struct {
	clock *tick.Clock
	mu    sync.Mutex
	after []func() // run once the clock has stopped
}

// sampling returns the daemon's samplers, starting their clock on first
// use; it stops when ctx ends.
func (d *daemon) sampling(ctx context.Context) *samplers {
	if d.samplers == nil {
		sp := &samplers{clock: tick.New(d.root)}
		d.samplers = sp
		d.Go(func() {
			sp.clock.Run(ctx)
			sp.mu.Lock()
			defer sp.mu.Unlock()
			for _, f := range sp.after {
				f()
			}
		})
	}
	return d.samplers
}

// afterStop runs f once the clock has stopped (no reader runs any more).
func (sp *samplers) afterStop(f func()) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.after = append(sp.after, f)
}
