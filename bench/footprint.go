package main

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cilium/ebpf"
)

// startMainDaemon starts the daemon every step measures, with all features
// on: KSTAT attached in the harness's namespace, the tracer enabled and
// telemetry sampling at -telemetry-interval.
func (h *harness) startMainDaemon() error {
	if h.kstat == "" {
		return errors.New("kstat did not build")
	}
	flags, err := h.serveFlags()
	if err != nil {
		return err
	}
	var extra []string
	if flags["netns"] && h.netns != "" {
		extra = append(extra, "--netns", "/run/netns/"+h.netns)
	}
	if flags["kstat-start"] {
		extra = append(extra, "--kstat-start")
	}
	d, err := h.startDaemon("kstat-serve", flags, extra...)
	if err != nil {
		return err
	}
	h.daemon = d
	var missing []string
	if !flags["listen"] {
		missing = append(missing, "HTTP exporter (no --listen flag)")
	}
	if !flags["netns"] {
		missing = append(missing, "KSTAT in another namespace (no --netns flag)")
	}
	if d.has("kstat/start") {
		if !flags["kstat-start"] {
			if err := d.set("kstat/start", "1"); err != nil {
				h.notef("KSTAT: %v", err)
			}
		}
	} else {
		missing = append(missing, "KSTAT (no kstat/start file)")
	}
	if d.has("tracer/enable") {
		if err := d.set("tracer/enable", "1"); err != nil {
			h.notef("tracer: %v", err)
		}
	} else {
		missing = append(missing, "tracer (no tracer/enable file)")
	}
	if d.has("telemetry/log_interval") {
		if err := d.set("telemetry/log_interval", h.cfg.telemetryTick); err != nil {
			h.notef("telemetry: %v", err)
		}
	} else {
		missing = append(missing, "telemetry (no telemetry/log_interval file)")
	}
	if d.has("telemetry/enable") {
		if err := d.set("telemetry/enable", "1"); err != nil {
			h.notef("telemetry: %v", err)
		}
	}
	if !d.has("bufstat") {
		missing = append(missing, "bufstat (no bufstat file)")
	}
	if len(missing) > 0 {
		h.notef("daemon features missing in this build: %v", missing)
	}
	time.Sleep(2 * time.Second) // let the programs attach and the first samples run
	return nil
}

func (h *harness) stopMainDaemon() {
	if h.daemon == nil {
		return
	}
	var seen []ebpf.ProgramID
	if progs, err := programIDs(h.daemon.pid); err == nil {
		for id := range progs {
			seen = append(seen, id)
		}
	}
	h.daemon.stop()
	// The kernel frees a program shortly after its last reference goes.
	var left []ebpf.ProgramID
	for try := 0; try < 20; try++ {
		left = left[:0]
		for _, id := range seen {
			if p, err := ebpf.NewProgramFromID(id); err == nil {
				p.Close()
				left = append(left, id)
			}
		}
		if len(left) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(left) > 0 {
		h.notef("after SIGTERM of the daemon, BPF programs %v it held are still loaded", left)
	} else if len(seen) > 0 {
		h.notef("after SIGTERM of the daemon none of the %d BPF programs it held is still loaded", len(seen))
	}
}

// footprint samples the daemon's RSS every second between begin and end.
type footprint struct {
	pid       int
	start     time.Time
	first     usage
	mu        sync.Mutex
	maxRSS    int64
	stopCh    chan struct{}
	stoppedCh chan struct{}
}

func beginFootprint(pid int) (*footprint, error) {
	u, err := readUsage(pid)
	if err != nil {
		return nil, err
	}
	f := &footprint{pid: pid, start: time.Now(), first: u, maxRSS: u.rssKB,
		stopCh: make(chan struct{}), stoppedCh: make(chan struct{})}
	go func() {
		defer close(f.stoppedCh)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-f.stopCh:
				return
			case <-t.C:
				if u, err := readUsage(pid); err == nil {
					f.mu.Lock()
					f.maxRSS = max(f.maxRSS, u.rssKB)
					f.mu.Unlock()
				}
			}
		}
	}()
	return f, nil
}

// end returns the CPU share of one core, the largest and the last RSS.
func (f *footprint) end() (cpuPct float64, maxRSS, lastRSS int64, window time.Duration, err error) {
	close(f.stopCh)
	<-f.stoppedCh
	u, err := readUsage(f.pid)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	window = time.Since(f.start)
	cpuPct = float64(u.ticks-f.first.ticks) / clockTick / window.Seconds() * 100
	return cpuPct, max(f.maxRSS, u.rssKB), u.rssKB, window, nil
}

func (h *harness) footprintIdle() error {
	if h.daemon == nil || !h.daemon.alive() {
		return errors.New("no daemon running")
	}
	f, err := beginFootprint(h.daemon.pid)
	if err != nil {
		return err
	}
	time.Sleep(h.cfg.idle)
	cpu, maxRSS, _, window, err := f.end()
	if err != nil {
		return err
	}
	h.measured("5", fmt.Sprintf("daemon idle CPU, all features on, telemetry every %s (%s)", h.cfg.telemetryTick, window.Round(time.Second)),
		fmt.Sprintf("%.2f%% of a core", cpu), "≤ 0.5%", cpu <= 0.5)
	h.measured("5", "daemon RSS idle (max VmRSS)", mib(maxRSS), "≤ 30 MB", maxRSS*1024 <= 30e6)
	if u, err := readUsage(h.daemon.pid); err == nil {
		h.measured("5", "daemon RSS idle at the end: anonymous (heap, stacks, Go runtime) / file-backed (the binary's text and data: page cache, shared)",
			fmt.Sprintf("%s / %s", mib(u.anonKB), mib(u.fileKB)), "", true)
	}
	return nil
}

// beginLoad starts the footprint window over the load steps.
func (h *harness) beginLoad() {
	if h.daemon == nil || !h.daemon.alive() {
		return
	}
	f, err := beginFootprint(h.daemon.pid)
	if err != nil {
		h.notef("footprint under load: %v", err)
		return
	}
	h.load = f
}

func (h *harness) endLoad() {
	if h.load == nil {
		h.notRun("5", "daemon CPU and RSS under load", "≤ 30 MB", "no daemon")
		return
	}
	cpu, maxRSS, _, window, err := h.load.end()
	if err != nil {
		h.notRun("5", "daemon CPU and RSS under load", "≤ 30 MB", err.Error())
		return
	}
	h.measured("5", fmt.Sprintf("daemon CPU under the iperf3, kmalloc, fork/exec and lock loads (%s)", window.Round(time.Second)),
		fmt.Sprintf("%.2f%% of a core", cpu), "", true)
	h.measured("5", "daemon RSS under load (max VmRSS)", mib(maxRSS), "≤ 30 MB", maxRSS*1024 <= 30e6)
}

// mib formats a size in kB (KiB, as /proc prints it) in MB (10^6 bytes).
func mib(kb int64) string {
	return fmt.Sprintf("%.1f MB", float64(kb)*1024/1e6)
}
