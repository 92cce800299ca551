package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const iperfPort = "5201"

// setupNetns makes the namespace all test traffic stays in, with its
// loopback up and an iperf3 server in it; both go at cleanup.
func (h *harness) setupNetns() error {
	name := fmt.Sprintf("kstat-bench-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	h.netns = name
	h.atExit(func() {
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			h.logf("ip netns delete %s: %v: %s", name, err, out)
		}
	})
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("loopback up in %s: %v: %s", name, err, out)
	}
	if h.iperf3 == "" {
		return errors.New("iperf3 missing: no throughput runs")
	}
	srv := exec.Command("ip", "netns", "exec", name, h.iperf3, "-s", "-p", iperfPort, "-B", "127.0.0.1")
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("starting iperf3 server: %w", err)
	}
	h.iperfServer = srv
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); close(exited) }()
	h.atExit(func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(3 * time.Second):
			_ = srv.Process.Kill()
			<-exited
		}
	})
	time.Sleep(500 * time.Millisecond)
	return nil
}

// iperf runs one iperf3 client in the namespace and returns the received
// throughput in bit/s.
func (h *harness) iperf(d time.Duration, extra ...string) (float64, error) {
	args := append([]string{"netns", "exec", h.netns, h.iperf3, "-c", "127.0.0.1", "-p", iperfPort,
		"-t", strconv.Itoa(int(d.Seconds())), "-J"}, extra...)
	out, err := exec.Command("ip", args...).Output()
	var res struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		return 0, fmt.Errorf("iperf3: %v (%v)", err, jerr)
	}
	if res.Error != "" {
		return 0, fmt.Errorf("iperf3: %s", res.Error)
	}
	if res.End.SumReceived.BitsPerSecond == 0 {
		return 0, fmt.Errorf("iperf3 reported no throughput: %v", err)
	}
	return res.End.SumReceived.BitsPerSecond, nil
}

// alternate gives the order of the runs with (true) and without (false):
// off on, on off, off on, ... so that a slow drift cancels.
func alternate(pairs int) []bool {
	var order []bool
	for i := 0; i < pairs; i++ {
		order = append(order, i%2 == 1, i%2 == 0)
	}
	return order
}

// iperfOverhead measures loopback TCP throughput in the namespace with the
// KSTAT program attached there and detached (kstat/start 1 and 0), with the
// tracer off so that only KSTAT differs.
func (h *harness) iperfOverhead() error {
	const sec, what, target = "3", "iperf3 loopback TCP throughput loss with KSTAT attached", "≤ 2%"
	switch {
	case h.iperf3 == "" || h.netns == "":
		h.notRun(sec, what, target, "iperf3 or the network namespace is missing")
		return nil
	case h.daemon == nil || !h.daemon.alive():
		h.notRun(sec, what, target, "no daemon")
		return nil
	case !h.daemon.has("kstat/start"):
		h.notRun(sec, what, target, "KSTAT not landed (no kstat/start file)")
		return nil
	}
	d := h.daemon
	if d.has("tracer/enable") {
		if err := d.set("tracer/enable", "0"); err != nil {
			return err
		}
		defer func() { _ = d.set("tracer/enable", "1") }()
	}
	var with, without, ratios []float64
	var runs []string
	var counted uint64
	for i, on := range alternate(h.cfg.iperfPairs) {
		v := "0"
		if on {
			v = "1"
		}
		if err := d.set("kstat/start", v); err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond)
		nf := heldLinks(d.pid)["netfilter"]
		if on && nf == 0 {
			return errors.New("kstat/start=1 but the daemon holds no netfilter link")
		}
		if !on && nf > 0 {
			return fmt.Errorf("kstat/start=0 but the daemon still holds %d netfilter links", nf)
		}
		before, _ := d.get("kstat/nout")
		bps, err := h.iperf(h.cfg.iperfTime)
		if err != nil {
			return err
		}
		after, _ := d.get("kstat/nout")
		if on {
			with = append(with, bps)
			b, _ := strconv.ParseUint(before, 10, 64)
			a, _ := strconv.ParseUint(after, 10, 64)
			counted += a - b
		} else {
			without = append(without, bps)
		}
		if i%2 == 1 { // a pair done: its two runs were back to back
			ratios = append(ratios, with[len(with)-1]/without[len(without)-1])
		}
		runs = append(runs, fmt.Sprintf("%s %.2f", map[bool]string{true: "with", false: "without"}[on], bps/1e9))
	}
	if err := d.set("kstat/start", "1"); err != nil {
		return err
	}
	mw, mo := medianF(with), medianF(without)
	// The loss is the median over the pairs of 1 - with/without: each pair
	// ran back to back, so drift between pairs cancels.
	loss := (1 - medianF(ratios)) * 100
	h.measured(sec, fmt.Sprintf("iperf3 %s single stream in a netns, median of %d: without / with KSTAT", h.cfg.iperfTime, len(with)),
		fmt.Sprintf("%.2f / %.2f Gbit/s", mo/1e9, mw/1e9), "", true)
	h.measured(sec, what+" (median over the pairs of 1 − with/without)", fmt.Sprintf("%.2f%%", loss), target, loss <= 2)
	h.notef("iperf3 runs in order (Gbit/s): %s; kstat/nout grew by %d during the runs with KSTAT", strings.Join(runs, ", "), counted)
	return nil
}

// socketLoop opens and closes n TCP sockets on one thread: each socket(2)
// allocates the socket, its inode and its protocol state, each close(2)
// frees them.
func socketLoop(n int) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	for i := 0; i < n; i++ {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("socket: %w", err)
		}
		syscall.Close(fd)
	}
	return time.Since(start), nil
}

// tracerOverhead times the socket loop with the tracer's programs attached
// and detached (tracer/enable 1 and 0), and attached without stack
// sampling (tracer/stack_every 0) to tell the stack captures' share.
func (h *harness) tracerOverhead() error {
	const sec, what, target = "3", "kmalloc-heavy workload slowdown with the tracer", "≤ 15%"
	switch {
	case h.daemon == nil || !h.daemon.alive():
		h.notRun(sec, what, target, "no daemon")
		return nil
	case !h.daemon.has("tracer/enable"):
		h.notRun(sec, what, target, "tracer not landed (no tracer/enable file)")
		return nil
	}
	d := h.daemon
	stackEvery, _ := d.get("tracer/stack_every")
	if _, err := socketLoop(h.cfg.sockets / 4); err != nil { // warm up
		return err
	}
	const off, on, nostack = 0, 1, 2
	modes := []string{"without", "with", "with, stack_every=0"}
	order := []int{off, on, nostack, nostack, on, off, off, nostack, on}
	if stackEvery == "" {
		order = []int{off, on, on, off, off, on}
	}
	times := make([][]time.Duration, 3)
	var runs []string
	for _, m := range order {
		if err := d.set("tracer/enable", map[bool]string{true: "1", false: "0"}[m != off]); err != nil {
			return err
		}
		if stackEvery != "" {
			se := stackEvery
			if m == nostack {
				se = "0"
			}
			if err := d.set("tracer/stack_every", se); err != nil {
				return err
			}
		}
		time.Sleep(300 * time.Millisecond)
		links := heldLinks(d.pid)
		if tp := links["tracing"] + links["perf_event"] + links["raw_tracepoint"]; m != off && tp == 0 {
			return errors.New("tracer/enable=1 but the daemon holds no tracepoint link")
		}
		t, err := socketLoop(h.cfg.sockets)
		if err != nil {
			return err
		}
		times[m] = append(times[m], t)
		runs = append(runs, fmt.Sprintf("%s %s", modes[m], t.Round(time.Millisecond)))
	}
	if stackEvery != "" {
		if err := d.set("tracer/stack_every", stackEvery); err != nil {
			return err
		}
	}
	if err := d.set("tracer/enable", "1"); err != nil {
		return err
	}
	per := func(t time.Duration) float64 { return float64(t) / 1e3 / float64(h.cfg.sockets) }
	mo, mw := median(times[off]), median(times[on])
	slow := float64(mw-mo) / float64(mo) * 100
	h.measured(sec, fmt.Sprintf("socket open/close × %d, median of %d: without / with tracer (stack_every=%s)", h.cfg.sockets, len(times[on]), dash(stackEvery)),
		fmt.Sprintf("%s / %s (%.2f / %.2f µs per socket)", mo.Round(time.Millisecond), mw.Round(time.Millisecond), per(mo), per(mw)), "", true)
	h.measured(sec, what, fmt.Sprintf("%.1f%%", slow), target, slow <= 15)
	if len(times[nostack]) > 0 {
		mn := median(times[nostack])
		s0 := float64(mn-mo) / float64(mo) * 100
		h.measured(sec, "the same with tracer/stack_every=0 (no stack captures)",
			fmt.Sprintf("%.1f%% (%.2f µs per socket)", s0, per(mn)), target, s0 <= 15)
	}
	h.notef("socket loop runs in order: %s", strings.Join(runs, ", "))
	return nil
}

func medianF(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
