// Command bench measures kstat against its peers and against the floor, in
// one run, and writes a markdown table: scrape cost against node_exporter
// and plain read(2) of the same /proc files, the per-event cost of every BPF
// program of the daemon (kernel.bpf_stats_enabled), the whole-system
// overhead of the KSTAT program (iperf3 in a network namespace) and of the
// tracer (a socket open/close loop), statsfs aggregate and FUSE read costs,
// and the daemon's memory and CPU. It also runs the Go benchmarks of the hot
// paths and prints them in the form benchstat reads.
//
// Run it from the repository as root: go run ./bench (see docs/PERFORMANCE.md).
// It is a program, not a test, so "go test ./..." never runs it. A step
// whose feature or tool is missing says why in the table and the others run.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"
)

// config holds the command-line settings.
type config struct {
	outDir        string
	neVersion     string
	neBinary      string
	scrapes       int
	scrapeGap     time.Duration
	idle          time.Duration
	iperfTime     time.Duration
	iperfPairs    int
	sockets       int
	execs         int
	fuseReads     int
	benchCount    int
	benchTime     string
	skipGoBench   bool
	telemetryTick string
	peerOps       int
	peerRounds    int
	only          string
}

func main() {
	if dir := os.Getenv(fuseFloorEnv); dir != "" {
		if err := serveFuseFloor(dir); err != nil {
			fatalf("bare go-fuse filesystem: %v", err)
		}
		return
	}
	var c config
	flag.StringVar(&c.outDir, "out", "/tmp/kstat-bench", "directory for results.md, benchmarks.txt and the daemons' logs")
	flag.StringVar(&c.neVersion, "node-exporter-version", nodeExporterVersion, "node_exporter version to compare with (installed with go install when missing)")
	flag.StringVar(&c.neBinary, "node-exporter", "", "node_exporter binary to use instead of installing the pinned version")
	flag.IntVar(&c.scrapes, "scrapes", 300, "scrapes of each exporter (at least 200)")
	flag.DurationVar(&c.scrapeGap, "scrape-gap", 60*time.Millisecond, "time between scrape rounds; above the collectors' 50ms cache so every kstat scrape reads /proc")
	flag.DurationVar(&c.idle, "idle", 60*time.Second, "idle window for the daemon's footprint")
	flag.DurationVar(&c.iperfTime, "iperf-time", 10*time.Second, "length of one iperf3 run (at least 10s)")
	flag.IntVar(&c.iperfPairs, "iperf-pairs", 5, "iperf3 runs with and without KSTAT, alternated")
	flag.IntVar(&c.sockets, "sockets", 200000, "socket open/close iterations of one kmalloc-workload run")
	flag.IntVar(&c.execs, "execs", 400, "fork/exec/exit of /bin/true in the BPF cost phase")
	flag.IntVar(&c.fuseReads, "fuse-reads", 2000, "reads of a FUSE value file and of /proc/meminfo")
	flag.IntVar(&c.benchCount, "bench-count", 5, "go test -count for the Go benchmarks")
	flag.StringVar(&c.benchTime, "bench-time", "200ms", "go test -benchtime for the Go benchmarks")
	flag.BoolVar(&c.skipGoBench, "skip-go-bench", false, "do not run the Go benchmarks")
	flag.IntVar(&c.peerOps, "peer-ops", 100000, "iterations of the socket and pipe loops in the tracer-and-peers step")
	flag.IntVar(&c.peerRounds, "peer-rounds", 5, "interleaved rounds of the tracer-and-peers step")
	flag.StringVar(&c.only, "only", "", "run only these steps (comma-separated names as logged, e.g. \"tracer peers\"); default: all")
	flag.StringVar(&c.telemetryTick, "telemetry-interval", "1s", "telemetry/log_interval while measuring")
	flag.Parse()
	if c.scrapes < 200 {
		fatalf("-scrapes must be at least 200")
	}
	if c.iperfTime < 10*time.Second {
		fatalf("-iperf-time must be at least 10s")
	}
	if os.Geteuid() != 0 {
		fatalf("the harness needs root (BPF programs, FUSE, network namespaces, kernel.bpf_stats_enabled)")
	}
	if err := os.MkdirAll(c.outDir, 0o755); err != nil {
		fatalf("%v", err)
	}

	h := newHarness(c)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		h.logf("%v: cleaning up", s)
		h.cleanup()
		os.Exit(130)
	}()
	defer h.cleanup()
	defer func() {
		if p := recover(); p != nil {
			h.cleanup()
			fmt.Fprintf(os.Stderr, "bench: panic: %v\n%s", p, debug.Stack())
			os.Exit(2)
		}
	}()

	h.run()

	md := h.markdown()
	path := filepath.Join(c.outDir, "results.md")
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		h.logf("writing %s: %v", path, err)
	}
	fmt.Print(md)
	h.logf("results in %s (took %s)", path, time.Since(h.started).Round(time.Second))
}

// run does every step in order; a step that cannot run records why.
func (h *harness) run() {
	h.env = collectEnv(h)
	h.step("build", h.build)
	h.step("tools", h.tools)
	h.step("netns", h.setupNetns)
	h.step("daemon", h.startMainDaemon)
	h.step("footprint idle", h.footprintIdle)
	h.step("scrape", h.scrapeCost)
	h.step("fuse", h.fuseRead)
	h.beginLoad()
	h.step("iperf3", h.iperfOverhead)
	h.step("kmalloc workload", h.tracerOverhead)
	h.step("tracer peers", h.tracerPeers)
	h.step("bpf cost", h.bpfCost)
	h.endLoad()
	h.stopMainDaemon()
	h.step("statsfs", h.statsfsAggregates)
	if !h.cfg.skipGoBench {
		h.step("go benchmarks", h.goBenchmarks)
	}
	h.env.loadEnd = loadavg()
}

// step runs fn and turns an error or a panic into a "could not run" note.
func (h *harness) step(name string, fn func() error) {
	if h.cfg.only != "" && !slices.Contains(strings.Split(h.cfg.only, ","), name) {
		return
	}
	h.logf("== %s", name)
	start := time.Now()
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			}
		}()
		return fn()
	}()
	if err != nil {
		h.logf("%s: %v", name, err)
		h.notef("**%s** could not run: %s", name, strings.TrimSpace(err.Error()))
	}
	h.logf("   %s took %s", name, time.Since(start).Round(100*time.Millisecond))
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}
