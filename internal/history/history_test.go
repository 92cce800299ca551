package history

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kstat/kstat/statsfs"
)

// tree is a small statistics tree the tests drive by hand.
type tree struct {
	root                   *statsfs.Source
	mem, block, mm, system *statsfs.Counters
	dev                    map[string]*statsfs.Counters
	irq                    map[string]*statsfs.Counters
	procs                  map[string]*statsfs.Counters
	tracer                 *statsfs.Source
}

func u64(name string, flag statsfs.Flag) statsfs.Value {
	return statsfs.Value{Name: name, Type: statsfs.U64, Flag: flag, Aggr: statsfs.Sum}
}

func table(flag statsfs.Flag, names ...string) *statsfs.Table {
	vs := make([]statsfs.Value, len(names))
	for i, n := range names {
		vs[i] = u64(n, flag)
	}
	return statsfs.NewTable(vs...)
}

var (
	memTable    = table(statsfs.Floating, "total", "free", "available")
	blockTable  = table(statsfs.Floating, "buffers", "cached", "dirty")
	mmTable     = table(statsfs.Floating, "slab")
	systemTable = table(statsfs.Cumulative, "context_switches", "interrupts_total", "softirqs_total", "forks")
	devTable    = table(statsfs.Cumulative, "rx_bytes", "rx_packets", "tx_bytes", "tx_packets")
	irqTable    = table(statsfs.Cumulative, "count")
	procTable   = table(statsfs.Cumulative, "allocated_bytes", "freed_bytes", "kmalloc_calls", "forks", "execs", "lock_contentions")
)

func child(t testing.TB, parent *statsfs.Source, name string, tb *statsfs.Table) *statsfs.Counters {
	t.Helper()
	s := statsfs.NewSource("%s", name)
	c := statsfs.NewCounters(tb)
	if err := s.AddValues(tb, c, 0); err != nil {
		t.Fatal(err)
	}
	parent.AddSubordinate(s)
	return c
}

func newTree(t testing.TB) *tree {
	tr := &tree{root: statsfs.NewSource("kstat"), dev: map[string]*statsfs.Counters{},
		irq: map[string]*statsfs.Counters{}, procs: map[string]*statsfs.Counters{}}
	tr.mem = child(t, tr.root, "memory", memTable)
	tr.block = child(t, tr.root, "block", blockTable)
	tr.mm = child(t, tr.root, "mm", mmTable)
	tr.system = child(t, tr.root, "system", systemTable)
	net := statsfs.NewSource("net")
	dev := statsfs.NewSource("dev")
	net.AddSubordinate(dev)
	tr.root.AddSubordinate(net)
	for _, d := range []string{"eth0", "lo", "wlan0"} {
		tr.dev[d] = child(t, dev, d, devTable)
	}
	irq := statsfs.NewSource("irq")
	tr.root.AddSubordinate(irq)
	for _, l := range []string{"24", "LOC"} {
		tr.irq[l] = child(t, irq, l, irqTable)
	}
	tr.tracer = statsfs.NewSource("tracer")
	if err := tr.tracer.AddValues(procTable, nil, 0); err != nil {
		t.Fatal(err)
	}
	tr.root.AddSubordinate(tr.tracer)
	return tr
}

func (tr *tree) addProc(t testing.TB, pid, comm string) *statsfs.Counters {
	t.Helper()
	s := statsfs.NewInstance("pid", pid)
	c := statsfs.NewCounters(procTable)
	if err := s.AddValues(procTable, c, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.AddControl(&statsfs.Control{Name: "comm", Read: func() string { return comm + "\n" }}); err != nil {
		t.Fatal(err)
	}
	tr.tracer.AddSubordinate(s)
	tr.procs[pid] = c
	return c
}

var t0 = time.Unix(1_800_000_000, 0)

// TestRates: gauges as read, counters as exact per-second rates over the
// time between readings, nothing for the first reading or a counter
// that went back, and a missing value absent.
func TestRates(t *testing.T) {
	tr := newTree(t)
	tr.mem.Store(0, 1000)
	tr.mem.Store(2, 300)
	tr.block.Store(1, 77)
	tr.system.Store(0, 5000)
	tr.dev["eth0"].Store(0, 1<<40)
	r := New(tr.root, Options{})
	u := r.Record(t0)
	if got := u.Sample.Values["mem/used"]; got != 700 {
		t.Errorf("mem/used %v, want 700 (total - available)", got)
	}
	if got := u.Sample.Values["mem/cached"]; got != 77 {
		t.Errorf("mem/cached %v, want 77", got)
	}
	if _, ok := u.Sample.Values["sys/context_switches"]; ok {
		t.Errorf("a rate in the first sample: %v", u.Sample.Values)
	}

	tr.system.Add(0, 3001)
	tr.dev["eth0"].Add(0, 12345)
	tr.system.Store(3, 0) // forks stay 0: rate 0, present
	u = r.Record(t0.Add(1500 * time.Millisecond))
	for key, want := range map[string]float64{
		"sys/context_switches": 3001 / 1.5,
		"net/eth0/rx_bytes":    12345 / 1.5,
		"sys/forks":            0,
	} {
		if got, ok := u.Sample.Values[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}

	tr.system.Store(0, 10) // a reset: no rate
	u = r.Record(t0.Add(2500 * time.Millisecond))
	if v, ok := u.Sample.Values["sys/context_switches"]; ok {
		t.Errorf("a rate %v across a counter reset", v)
	}
	u = r.Record(t0.Add(2500 * time.Millisecond)) // no time passed: no rates
	if v, ok := u.Sample.Values["sys/context_switches"]; ok {
		t.Errorf("a rate %v over no time", v)
	}
	if _, ok := u.Sample.Values["kstat/ipv4/tcp_packets"]; ok {
		t.Error("a series for a source the tree lacks")
	}

	tr.root.Find("block").SetHidden(true)
	u = r.Record(t0.Add(3 * time.Second))
	if v, ok := u.Sample.Values["mem/cached"]; ok {
		t.Errorf("mem/cached %v from a hidden source", v)
	}
}

// TestWindow: samples older than the window go; the charts choose the
// busiest series of the window, without those at 0 all along.
func TestWindow(t *testing.T) {
	tr := newTree(t)
	r := New(tr.root, Options{Step: time.Second, Window: 3 * time.Second, Top: 2})
	for i := range 6 {
		tr.dev["eth0"].Add(0, 100)
		tr.dev["lo"].Add(0, 10)
		tr.dev["wlan0"].Add(0, 1)
		tr.irq["LOC"].Add(0, 5)
		r.Record(t0.Add(time.Duration(i) * time.Second))
	}
	h := r.History()
	var times []int64
	for _, s := range h.Samples {
		times = append(times, s.Time)
	}
	want := []int64{t0.UnixMilli() + 2000, t0.UnixMilli() + 3000, t0.UnixMilli() + 4000, t0.UnixMilli() + 5000}
	if !slices.Equal(times, want) {
		t.Errorf("sample times %v, want %v", times, want)
	}
	charts := map[string][]Series{}
	for _, c := range h.Update.Charts {
		charts[c.ID] = c.Series
	}
	if got := charts["net-rx"]; !slices.Equal(got, []Series{{"net/eth0/rx_bytes", "eth0"}, {"net/lo/rx_bytes", "lo"}}) {
		t.Errorf("net-rx series %v, want eth0 and lo (the two busiest)", got)
	}
	if got := charts["net-tx"]; len(got) != 0 {
		t.Errorf("net-tx series %v, want none (all at 0)", got)
	}
	if got := charts["irq"]; !slices.Equal(got, []Series{{"irq/LOC", "LOC"}}) {
		t.Errorf("irq series %v, want LOC alone (24 never fired)", got)
	}
	if got := charts["memory"]; len(got) != 5 {
		t.Errorf("memory series %v, want all 5", got)
	}
}

// TestTracerTop: the processes of the top list and the tracer chart are
// the busiest by allocated bytes per second, with their comms; a process
// new since the last sample counts from zero.
func TestTracerTop(t *testing.T) {
	tr := newTree(t)
	a := tr.addProc(t, "100", "alpha")
	b := tr.addProc(t, "20", "beta")
	c := tr.addProc(t, "3", "gamma")
	r := New(tr.root, Options{Top: 2})
	r.Record(t0)
	a.Add(0, 1000)
	b.Add(0, 5000)
	c.Add(0, 3000)
	c.Add(3, 2)
	d := tr.addProc(t, "7", "delta") // new: all of its count is this step's
	d.Add(0, 8000)
	u := r.Record(t0.Add(2 * time.Second))
	if u.Traced != 4 {
		t.Errorf("traced %d, want 4", u.Traced)
	}
	var got []string
	for _, p := range u.Procs {
		got = append(got, p.PID+" "+p.Comm)
	}
	if !slices.Equal(got, []string{"7 delta", "20 beta"}) {
		t.Fatalf("top %v, want 7 delta and 20 beta", got)
	}
	if u.Procs[0].AllocatedBytes != 4000 || u.Procs[1].AllocatedBytes != 2500 {
		t.Errorf("rates %v and %v, want 4000 and 2500", u.Procs[0].AllocatedBytes, u.Procs[1].AllocatedBytes)
	}
	if _, ok := u.Sample.Values["tracer/3"]; ok {
		t.Error("a series for a process out of the top")
	}
	for _, ch := range u.Charts {
		if ch.ID == "tracer" && !slices.Equal(ch.Series, []Series{{"tracer/7", "delta (7)"}, {"tracer/20", "beta (20)"}}) {
			t.Errorf("tracer chart %v", ch.Series)
		}
	}
}

// TestJSON: the history in columns, null where a sample lacks a key.
func TestJSON(t *testing.T) {
	tr := newTree(t)
	tr.mem.Store(0, 10)
	tr.mem.Store(2, 4)
	r := New(tr.root, Options{Window: time.Minute})
	r.Record(t0)
	tr.system.Add(0, 7)
	r.Record(t0.Add(time.Second))
	b, err := json.Marshal(r.History())
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Step   int64   `json:"step_ms"`
		Window int64   `json:"window_ms"`
		Times  []int64 `json:"times"`
		Series map[string]struct {
			Start  int        `json:"start"`
			Values []*float64 `json:"values"`
		} `json:"series"`
		Charts []Chart `json:"charts"`
		Procs  []Proc  `json:"procs"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if got.Step != 1000 || got.Window != 60000 || !slices.Equal(got.Times, []int64{t0.UnixMilli(), t0.UnixMilli() + 1000}) {
		t.Errorf("step %d window %d times %v", got.Step, got.Window, got.Times)
	}
	if cs := got.Series["sys/context_switches"]; cs.Start != 1 || len(cs.Values) != 1 || *cs.Values[0] != 7 {
		t.Errorf("sys/context_switches column %s", b)
	}
	if used := got.Series["mem/used"]; used.Start != 0 || len(used.Values) != 2 || *used.Values[0] != 6 {
		t.Errorf("mem/used column %s", b)
	}
	if c := got.Series["mem/cached"]; c.Start != 0 || len(c.Values) != 2 {
		t.Errorf("mem/cached column %s", b)
	}
	if len(got.Charts) != len(chartDefs) || got.Procs == nil {
		t.Errorf("charts %v procs %v", got.Charts, got.Procs)
	}
}

// TestSubscribe: a subscriber gets every update after its history; one
// that does not keep up is dropped, its channel closed.
func TestSubscribe(t *testing.T) {
	tr := newTree(t)
	r := New(tr.root, Options{})
	r.Record(t0)
	h, ch, stop := r.Subscribe()
	defer stop()
	if len(h.Samples) != 1 {
		t.Fatalf("history of %d samples, want 1", len(h.Samples))
	}
	r.Record(t0.Add(time.Second))
	if u := <-ch; u.Sample.Time != t0.UnixMilli()+1000 {
		t.Errorf("update at %d", u.Sample.Time)
	}
	_, slow, stopSlow := r.Subscribe()
	defer stopSlow()
	for i := range cap(slow) + 1 {
		r.Record(t0.Add(time.Duration(i+2) * time.Second))
		<-ch
	}
	n := 0
	for range slow {
		n++
	}
	if n != cap(slow) {
		t.Errorf("the slow subscriber got %d updates before its channel closed, want %d", n, cap(slow))
	}
}

// TestWindowForgets: a series whose activity left the window leaves its
// chart, and its legend goes.
func TestWindowForgets(t *testing.T) {
	tr := newTree(t)
	r := New(tr.root, Options{Window: 2 * time.Second})
	r.Record(t0)
	tr.dev["wlan0"].Add(2, 500) // tx once
	r.Record(t0.Add(time.Second))
	series := func() []Series {
		for _, c := range r.History().Update.Charts {
			if c.ID == "net-tx" {
				return c.Series
			}
		}
		return nil
	}
	if got := series(); !slices.Equal(got, []Series{{"net/wlan0/tx_bytes", "wlan0"}}) {
		t.Fatalf("net-tx %v, want wlan0", got)
	}
	for i := 2; i <= 5; i++ {
		r.Record(t0.Add(time.Duration(i) * time.Second))
	}
	if got := series(); len(got) != 0 {
		t.Errorf("net-tx %v after wlan0's burst left the window, want none", got)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if w := r.window; w.n["net/wlan0/tx_bytes"] != 3 || w.positive["net/wlan0/tx_bytes"] != 0 || w.sum["net/wlan0/tx_bytes"] != 0 {
		t.Errorf("window totals of wlan0: n %d positive %d sum %v", w.n["net/wlan0/tx_bytes"], w.positive["net/wlan0/tx_bytes"], w.sum["net/wlan0/tx_bytes"])
	}
}

// TestJSONSpans: a series is sent for the span of samples where it has
// values, null for the gaps inside.
func TestJSONSpans(t *testing.T) {
	tr := newTree(t)
	block := tr.root.Find("block")
	r := New(tr.root, Options{})
	block.SetHidden(true)
	r.Record(t0)
	block.SetHidden(false)
	r.Record(t0.Add(time.Second))
	block.SetHidden(true)
	r.Record(t0.Add(2 * time.Second))
	block.SetHidden(false)
	r.Record(t0.Add(3 * time.Second))
	block.SetHidden(true)
	r.Record(t0.Add(4 * time.Second))
	b, err := json.Marshal(r.History())
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Series map[string]json.RawMessage `json:"series"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if c := string(got.Series["mem/cached"]); c != `{"start":1,"values":[0,null,0]}` {
		t.Errorf("mem/cached %s, want samples 1 to 3 with a gap", c)
	}
}

// BenchmarkRecord takes one sample a second of a tree of 3 network
// devices, 40 IRQ lines and 100 traced processes, in a pass of its own,
// as the daemon's history does every --dashboard-step.
func BenchmarkRecord(b *testing.B) {
	tr := newTree(b)
	irq := tr.root.Subordinate("irq")
	for i := range 38 {
		tr.irq[fmt.Sprint(i)] = child(b, irq, fmt.Sprint(i), irqTable)
	}
	for i := range 100 {
		tr.addProc(b, fmt.Sprint(1000+i), "proc").Store(0, uint64(i))
	}
	r := New(tr.root, Options{})
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		for _, c := range tr.procs {
			c.Add(0, 4096)
		}
		r.Record(now)
	}
}
