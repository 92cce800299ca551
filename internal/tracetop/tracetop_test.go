package tracetop

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/kstat/kstat/internal/tracer"
)

// Every counter of tracer.Proc is subtracted by Delta; only the gauges
// (outstanding bytes and allocations, the longest waits) are kept. A new
// field of Proc fails here until Delta knows it.
func TestDeltaCoversEveryCounter(t *testing.T) {
	gauges := map[string]bool{"Pid": true, "Ppid": true, "Comm": true, "Cgroup": true, "BytesOut": true, "AllocsOut": true, "LockMaxNs": true}
	var prev, cur tracer.Proc
	pv, cv := reflect.ValueOf(&prev).Elem(), reflect.ValueOf(&cur).Elem()
	set := func(v reflect.Value, x uint64) {
		switch v.Kind() {
		case reflect.Uint64, reflect.Uint32:
			v.SetUint(x)
		case reflect.Array:
			for i := range v.Len() {
				v.Index(i).SetUint(x)
			}
		}
	}
	for i := range pv.NumField() {
		set(pv.Field(i), 3)
		set(cv.Field(i), 10)
	}
	d := Delta(&prev, cur)
	dv := reflect.ValueOf(d)
	for i := range dv.NumField() {
		f := dv.Field(i)
		name := dv.Type().Field(i).Name
		want := uint64(7)
		if gauges[name] {
			want = 10
		}
		var got uint64
		switch f.Kind() {
		case reflect.Uint64, reflect.Uint32:
			got = f.Uint()
		case reflect.Array:
			got = f.Index(0).Uint()
		default:
			continue
		}
		if got != want {
			t.Errorf("Delta: %s = %d, want %d", name, got, want)
		}
	}
	// A smaller count: the pid is a new process, counted from zero.
	prev.Forks = 20
	if d := Delta(&prev, cur); d.Forks != 10 || d.Kmalloc != 10 {
		t.Errorf("reused pid: forks %d kmalloc %d, want 10 and 10", d.Forks, d.Kmalloc)
	}
	if d := Delta(nil, cur); !reflect.DeepEqual(d, cur) {
		t.Error("Delta(nil, cur) is not cur")
	}
}

func sample(at time.Time, procs ...tracer.Proc) Sample {
	return Sample{Time: at, Procs: procs}
}

func TestBuildRatesSortFilter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	prev := sample(t0,
		tracer.Proc{Pid: 10, Comm: "busy", Kmalloc: 1000, Forks: 1},
		tracer.Proc{Pid: 20, Comm: "bash", Kmalloc: 10, Forks: 0},
	)
	cur := sample(t0.Add(2*time.Second),
		tracer.Proc{Pid: 10, Comm: "busy", Kmalloc: 1010, Forks: 1, BytesOut: 4096},
		tracer.Proc{Pid: 20, Comm: "bash", Kmalloc: 110, Forks: 6},
		tracer.Proc{Pid: 30, Comm: "new", Kmalloc: 40},
	)
	pids := func(f Frame) []uint32 {
		var out []uint32
		for _, r := range f.Rows {
			out = append(out, r.Total.Pid)
		}
		return out
	}
	// Rates: bash made 100 kmallocs in 2 s, new 40, busy only 10.
	f := Build(prev, cur, t0, Settings{})
	if f.Settings.Sort != tracer.DefaultSort || f.Seconds != 2 {
		t.Fatalf("sort %q seconds %v", f.Settings.Sort, f.Seconds)
	}
	if got := pids(f); !reflect.DeepEqual(got, []uint32{20, 30, 10}) {
		t.Errorf("rate order %v, want [20 30 10]", got)
	}
	kmalloc := column(t, "kmalloc")
	if got := f.Cell(kmalloc, &f.Rows[0], 8); got != "50" {
		t.Errorf("bash kmalloc rate %q, want 50", got)
	}
	if got := f.Cell(column(t, "out_bytes"), &f.Rows[2], 8); got != "4096" {
		t.Errorf("busy out_bytes (a gauge) %q, want 4096", got)
	}
	// Cumulative: the long-lived busy process leads again.
	f = Build(prev, cur, t0, Settings{Cumulative: true})
	if got := pids(f); !reflect.DeepEqual(got, []uint32{10, 20, 30}) {
		t.Errorf("cumulative order %v", got)
	}
	if got := f.Cell(kmalloc, &f.Rows[0], 8); got != "1010" {
		t.Errorf("busy kmalloc total %q", got)
	}
	f = Build(prev, cur, t0, Settings{Sort: "pid", Filter: "b"})
	if got := pids(f); !reflect.DeepEqual(got, []uint32{10, 20}) || f.Procs != 3 {
		t.Errorf("filter b by pid: %v of %d", got, f.Procs)
	}
	f = Build(prev, cur, t0, Settings{Filter: "30"})
	if got := pids(f); !reflect.DeepEqual(got, []uint32{30}) {
		t.Errorf("filter 30: %v", got)
	}
	f = Build(prev, cur, t0, Settings{Comm: "bas"})
	if len(f.Rows) != 0 {
		t.Errorf("--comm is exact, got %v", pids(f))
	}
	// The JSON frame names every count; rates cover the interval.
	f = Build(prev, cur, t0, Settings{Sort: "forks"})
	b, err := json.Marshal(f.JSON(1))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Procs []map[string]any `json:"procs"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Procs) != 1 {
		t.Fatalf("--top 1 kept %d procs", len(out.Procs))
	}
	p := out.Procs[0]
	if p["pid"] != 20.0 || p["forks"] != 6.0 || p["kmalloc_calls"] != 110.0 {
		t.Errorf("json proc %v", p)
	}
	rate := p["per_second"].(map[string]any)
	if rate["forks"] != 3.0 {
		t.Errorf("per_second.forks %v, want 3", rate["forks"])
	}
	locks := p["locks"].(map[string]any)
	if _, ok := locks["mutex"].(map[string]any)["contentions"]; !ok || len(locks) != len(tracer.LockKinds) {
		t.Errorf("locks %v", locks)
	}
}

func column(t *testing.T, name string) tracer.Column {
	for _, c := range tracer.Columns() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no column %s", name)
	return tracer.Column{}
}

func TestHuman(t *testing.T) {
	for _, c := range []struct {
		v    float64
		w    int
		want string
	}{
		{0, 6, "0"}, {5, 6, "5"}, {2.5, 6, "2.5"}, {0.04, 6, "0.04"}, {312106.2, 6, "312106"},
		{312106.2, 5, "312k"}, {1234567, 6, "1235k"}, {1234567, 4, "1.2M"}, {1234567, 0, "1234567"}, {99.5, 6, "99.5"}, {1.9996, 6, "2"}, {99.97, 6, "100"},
	} {
		if got := human(c.v, c.w); got != c.want {
			t.Errorf("human(%v, %d) = %q, want %q", c.v, c.w, got, c.want)
		}
	}
}

// Every width from 40 to 250 gets pid, comm and the sort column, and no
// more than fits; a wider terminal never shows fewer columns.
func TestLayoutFits(t *testing.T) {
	prev := 0
	for cols := 40; cols <= 250; cols++ {
		shown := Layout(cols, "", "max_wait_us")
		used := 0
		names := map[string]bool{}
		for _, c := range shown {
			used += width(c) + 1
			names[c.Name] = true
		}
		if used > cols {
			t.Errorf("%d columns: %d cells used", cols, used)
		}
		if !names["pid"] || !names["comm"] || !names["max_wait_us"] {
			t.Errorf("%d columns: %v", cols, names)
		}
		if len(shown) < prev {
			t.Errorf("%d columns: %d shown, fewer than at %d", cols, len(shown), cols-1)
		}
		prev = len(shown)
	}
	if n := len(Layout(0, "", "pid")); n != len(tracer.Columns()) {
		t.Errorf("no width: %d of %d columns", n, len(tracer.Columns()))
	}
	for _, c := range Layout(200, tracer.GroupLocks, "pid") {
		if c.Group != tracer.GroupLocks && c.Name != "pid" && c.Name != "comm" {
			t.Errorf("locks group shows %s", c.Name)
		}
	}
}

type fakeSource struct{ procs []tracer.Proc }

func (f *fakeSource) Procs() ([]tracer.Proc, error)      { return f.procs, nil }
func (f *fakeSource) Counters() (tracer.Counters, error) { return tracer.Counters{}, nil }

func press(m tea.Model, keys ...string) tea.Model {
	for _, k := range keys {
		r := []rune(k)
		msg := tea.KeyPressMsg{Code: r[0], Text: k}
		switch k {
		case "enter":
			msg = tea.KeyPressMsg{Code: tea.KeyEnter}
		case "esc":
			msg = tea.KeyPressMsg{Code: tea.KeyEscape}
		}
		m, _ = m.Update(msg)
	}
	return m
}

// The model without a terminal: keys change the sort, the filter, the
// mode and the columns; every line fits the width.
func TestModelKeys(t *testing.T) {
	src := &fakeSource{procs: []tracer.Proc{
		{Pid: 1, Comm: "init", Kmalloc: 5},
		{Pid: 2, Comm: "worker", Kmalloc: 50, Forks: 9},
	}}
	start := time.Now().Add(-time.Second)
	var m tea.Model = New(src, Options{Start: start, Interval: time.Second})
	m, _ = m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	s, err := Read(src)
	if err != nil {
		t.Fatal(err)
	}
	m, _ = m.Update(sampleMsg{s: s})
	view := func() []string {
		lines := strings.Split(m.View().Content, "\n")
		for i, l := range lines {
			if w := ansi.StringWidth(l); w > 80 {
				t.Errorf("line of %d cells: %q", w, l)
			}
			lines[i] = ansi.Strip(l)
		}
		return lines
	}
	firstPid := func() string {
		lines := view()
		return strings.Fields(lines[2])[0]
	}
	if got := firstPid(); got != "2" {
		t.Errorf("by kmalloc, first pid %s", got)
	}
	m = press(m, "<", "<", "<", "<", "<", "<") // kmalloc back to ppid
	lines := view()
	if !strings.Contains(lines[0], "sort ppid") {
		t.Fatalf("status %q", lines[0])
	}
	m = press(m, "<")
	if got := firstPid(); got != "1" {
		t.Errorf("by pid, first pid %s:\n%s", got, strings.Join(view(), "\n"))
	}
	m = press(m, "/", "w", "o", "r", "enter")
	lines = view()
	if !strings.Contains(lines[0], `filter "wor"`) || strings.Fields(lines[2])[0] != "2" || strings.TrimSpace(lines[3]) != "" {
		t.Errorf("filter wor:\n%s", strings.Join(lines, "\n"))
	}
	m = press(m, "esc", "c", "g", "g", "g")
	lines = view()
	if !strings.Contains(lines[0], "counts since start") || !strings.Contains(lines[1], "LOCKS") || strings.Contains(lines[1], "KMALLOC") {
		t.Errorf("after esc c g g g:\n%s", strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[len(lines)-1], "q quit") {
		t.Errorf("footer %q", lines[len(lines)-1])
	}
	m = press(m, "h")
	if lines = view(); !strings.Contains(strings.Join(lines, "\n"), "sort by the next column") || len(lines) > 24 {
		t.Errorf("help (%d lines):\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if _, cmd := m.Update(tea.KeyPressMsg{Code: 'q', Text: "q"}); cmd == nil {
		t.Error("q returns no command")
	} else if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Error("q does not quit")
	}
}

// p pauses: samples that arrive while paused do not change the table;
// the first one after p again does, its rates over the whole pause.
func TestModelPause(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var m tea.Model = New(&fakeSource{}, Options{Start: t0, Interval: time.Second})
	m, _ = m.Update(tea.WindowSizeMsg{Width: 100, Height: 10})
	feed := func(at time.Duration, forks uint64) {
		m, _ = m.Update(sampleMsg{s: sample(t0.Add(at), tracer.Proc{Pid: 7, Comm: "w", Forks: forks})})
	}
	forks := func() (string, float64) {
		f := m.(Model).Frame()
		return f.Cell(column(t, "forks"), &f.Rows[0], 8), f.Seconds
	}
	feed(time.Second, 4)
	if got, _ := forks(); got != "4" {
		t.Fatalf("forks/s %q, want 4", got)
	}
	m = press(m, "p")
	feed(2*time.Second, 100)
	if got, _ := forks(); got != "4" || !strings.HasPrefix(m.View().Content, "PAUSED") {
		t.Errorf("paused: forks/s %q, view %q", got, m.View().Content[:20])
	}
	m = press(m, "p")
	feed(5*time.Second, 12)
	if got, secs := forks(); got != "2" || secs != 4 {
		t.Errorf("after the pause: forks/s %q over %vs, want 2 over 4s", got, secs)
	}
}

// A process the cursor was moved to stays under it when the order changes.
func TestModelCursorFollowsProcess(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var m tea.Model = New(&fakeSource{}, Options{Start: t0, Interval: time.Second, Settings: Settings{Sort: "forks"}})
	m, _ = m.Update(tea.WindowSizeMsg{Width: 100, Height: 10})
	m, _ = m.Update(sampleMsg{s: sample(t0.Add(time.Second), tracer.Proc{Pid: 1, Forks: 9}, tracer.Proc{Pid: 2, Forks: 5}, tracer.Proc{Pid: 3, Forks: 1})})
	m, _ = m.Update(tea.KeyPressMsg{Code: tea.KeyDown})
	if c := m.(Model).table.Cursor(); c != 1 {
		t.Fatalf("cursor %d after down", c)
	}
	// pid 2 drops to the bottom: the cursor goes with it.
	m, _ = m.Update(sampleMsg{s: sample(t0.Add(2*time.Second), tracer.Proc{Pid: 1, Forks: 19}, tracer.Proc{Pid: 2, Forks: 5}, tracer.Proc{Pid: 3, Forks: 8})})
	if c := m.(Model).table.Cursor(); c != 2 {
		t.Errorf("cursor on row %d, want 2 where pid 2 went", c)
	}
}
