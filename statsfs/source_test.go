package statsfs_test

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/kstat/kstat/statsfs"
)

func TestAddValuesDuplicates(t *testing.T) {
	tab := kinds(statsfs.U64)
	s := statsfs.NewSource("s")
	c := statsfs.NewCounters(tab)
	if err := s.AddValues(tab, c, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.AddValues(tab, c, 0); !errors.Is(err, statsfs.ErrExist) {
		t.Errorf("same table and record again: %v, want ErrExist", err)
	}
	if err := s.AddValues(tab, nil, 0); err != nil {
		t.Errorf("same table as an aggregate: %v", err)
	}
	if err := s.AddValues(tab, nil, 0); !errors.Is(err, statsfs.ErrExist) {
		t.Errorf("aggregate twice: %v, want ErrExist", err)
	}
	if err := s.AddValues(tab, statsfs.NewCounters(tab), 0); err != nil {
		t.Errorf("same table, another record: %v", err)
	}
	// Functions cannot be compared: adding one twice adds two groups
	// rather than panicking.
	f := statsfs.RecordFunc(func(int) uint64 { return 1 })
	if err := s.AddValues(tab, f, 0); err != nil {
		t.Error(err)
	}
	if err := s.AddValues(tab, f, 0); err != nil {
		t.Error(err)
	}
	if n := len(s.Values()); n != 5*tab.Len() {
		t.Errorf("%d values, want %d", n, 5*tab.Len())
	}
	if err := s.AddControl(&statsfs.Control{Name: "k"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddControl(&statsfs.Control{Name: "k"}); !errors.Is(err, statsfs.ErrExist) {
		t.Errorf("second control k: %v", err)
	}
}

func TestLookups(t *testing.T) {
	t1 := statsfs.NewTable(statsfs.Value{Name: "a", Type: statsfs.U64}, statsfs.Value{Name: "b", Type: statsfs.U64})
	t2 := statsfs.NewTable(statsfs.Value{Name: "b", Type: statsfs.S8}, statsfs.Value{Name: "c", Type: statsfs.U64})
	s := statsfs.NewSource("s")
	child, _ := leaf(t, "child", statsfs.NewTable(statsfs.Value{Name: "d"}), 4)
	s.AddSubordinate(child)
	r1 := statsfs.RecordFunc(func(i int) uint64 { return uint64(10 + i) })
	r2 := statsfs.RecordFunc(func(i int) uint64 { return uint64(0xf0 + i) })
	if err := s.AddValues(t1, r1, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.AddValues(t2, r2, 0); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"a": "10", "b": "-16", "c": "241"} {
		r, err := s.GetByName(name)
		if err != nil || r.String() != want {
			t.Errorf("GetByName(%s) = %v, %v; want %s (newest group first)", name, r, err, want)
		}
	}
	if _, err := s.GetByName("d"); !errors.Is(err, statsfs.ErrNotFound) {
		t.Errorf("a child's value found in the parent: %v", err)
	}
	if r, err := s.Get(t1, 1); err != nil || r.Uint64() != 11 {
		t.Errorf("Get(t1, b) = %v, %v", r, err)
	}
	if _, err := s.Get(kinds(statsfs.U64), 0); !errors.Is(err, statsfs.ErrNotFound) {
		t.Errorf("unknown table: %v", err)
	}
	if _, err := s.Get(t1, 5); !errors.Is(err, statsfs.ErrNotFound) {
		t.Errorf("index out of range: %v", err)
	}
	if s.Find("child") != child || s.Find("child/") != child || s.Find("") != s || s.Find("nope") != nil {
		t.Error("Find")
	}
	// Newest child of a name wins.
	twin := statsfs.NewSource("child")
	s.AddSubordinate(twin)
	if s.Subordinate("child") != twin {
		t.Error("Subordinate does not return the newest child")
	}
}

func TestNames(t *testing.T) {
	long := strings.Repeat("x", 150)
	if n := statsfs.NewSource("%s", long).Name(); len(n) != statsfs.MaxNameLen {
		t.Errorf("long name kept %d bytes", len(n))
	}
	if n := statsfs.NewSource("vcpu%d", 3).Name(); n != "vcpu3" {
		t.Errorf("formatted name %q", n)
	}
	defer func() {
		if recover() == nil {
			t.Error("duplicate value names did not panic")
		}
	}()
	statsfs.NewTable(statsfs.Value{Name: "a"}, statsfs.Value{Name: "a"})
}

func TestSimpleValueTypes(t *testing.T) {
	for _, tc := range []struct {
		typ  statsfs.Type
		raw  uint64
		want string
	}{
		{statsfs.U64, math.MaxUint64, "18446744073709551615"},
		{statsfs.S64, 1 << 63, "-9223372036854775808"},
		{statsfs.S64, math.MaxInt64, "9223372036854775807"},
		{statsfs.U32, 1<<32 + 7, "7"},
		{statsfs.S32, 0x80000000, "-2147483648"},
		{statsfs.U16, 0x12345, "9029"},
		{statsfs.S16, 0xffff, "-1"},
		{statsfs.U8, 256, "0"},
		{statsfs.U8, 255, "255"},
		{statsfs.S8, 0x80, "-128"},
		{statsfs.S8, 0x17f, "127"},
		{statsfs.Bool, 0, "0"},
		{statsfs.Bool, 1 << 40, "1"},
		{statsfs.F64, statsfs.FloatBits(-0.25), "-0.25"},
	} {
		tab := statsfs.NewTable(statsfs.Value{Name: "v", Type: tc.typ})
		s := statsfs.NewSource("s")
		c := statsfs.NewCounters(tab)
		c.Store(0, tc.raw)
		if err := s.AddValues(tab, c, 0); err != nil {
			t.Fatal(err)
		}
		r, _ := s.GetByName("v")
		if r.String() != tc.want {
			t.Errorf("%v %#x reads %s, want %s", tc.typ, tc.raw, r, tc.want)
		}
		if got := tab.Value(0).Text(r); got != tc.want+"\n" {
			t.Errorf("%v text %q", tc.typ, got)
		}
	}
	// Wrapping updates.
	tab := statsfs.NewTable(statsfs.Value{Name: "v", Type: statsfs.U8})
	c := statsfs.NewCounters(tab)
	c.Store(0, 250)
	c.Add(0, 10)
	s := statsfs.NewSource("s")
	_ = s.AddValues(tab, c, 0)
	if r, _ := s.GetByName("v"); r.Uint64() != 4 {
		t.Errorf("u8 250+10 reads %d, want 4", r.Uint64())
	}
	c.Store(0, 0)
	c.Add(0, math.MaxUint64) // -1
	if r, _ := s.GetByName("v"); r.Uint64() != 255 {
		t.Errorf("u8 0-1 reads %d, want 255", r.Uint64())
	}
	// Readings convert.
	r := statsfs.Reading{Raw: uint64(1<<64 - 3), Type: statsfs.S64}
	if r.Int64() != -3 || r.Float64() != -3 {
		t.Errorf("reading -3: %d %v", r.Int64(), r.Float64())
	}
	if f := (statsfs.Reading{Raw: statsfs.FloatBits(2.75), Type: statsfs.F64}); f.Uint64() != 2 || f.Int64() != 2 {
		t.Error("float reading truncation")
	}
}

func TestModes(t *testing.T) {
	for _, tc := range []struct {
		v    statsfs.Value
		want fs.FileMode
	}{
		{statsfs.Value{Name: "c"}, 0o644},
		{statsfs.Value{Name: "g", Flag: statsfs.Floating}, 0o444},
		{statsfs.Value{Name: "k", ReadOnly: true}, 0o444},
	} {
		if m := tc.v.Mode(); m != tc.want {
			t.Errorf("%s: %v, want %v", tc.v.Name, m, tc.want)
		}
	}
	if m := (&statsfs.Control{Write: func(string) error { return nil }}).Mode(); m != 0o644 {
		t.Errorf("writable control %v", m)
	}
	if m := (&statsfs.Control{}).Mode(); m != 0o444 {
		t.Errorf("read-only control %v", m)
	}
	show := statsfs.Value{Name: "s", Show: func(r statsfs.Reading) string { return fmt.Sprintf("<%d>", r.Raw) }}
	if got := show.Text(statsfs.Reading{Raw: 3}); got != "<3>" {
		t.Errorf("Show text %q", got)
	}
}

func TestRevoke(t *testing.T) {
	tab := kinds(statsfs.U64)
	root := statsfs.NewSource("root")
	_ = root.AddValues(tab, nil, 0)
	a, ca := leaf(t, "a", tab, 5)
	b, _ := leaf(t, "b", tab, 7)
	root.AddSubordinate(a)
	root.AddSubordinate(b)
	a.Revoke()
	if r, _ := a.GetByName("sum"); r.Uint64() != 0 {
		t.Errorf("revoked value reads %d", r.Uint64())
	}
	if r, _ := root.GetByName("sum"); r.Uint64() != 7 {
		t.Errorf("aggregate over a revoked source = %d, want 7", r.Uint64())
	}
	if err := root.Clear(tab, 0); err != nil {
		t.Fatal(err)
	}
	if ca.Load(0) != 5 {
		t.Error("clearing touched a revoked record")
	}
}

func TestHiddenGroup(t *testing.T) {
	tab := kinds(statsfs.U64)
	root := statsfs.NewSource("root")
	_ = root.AddValues(tab, nil, 0)
	s := statsfs.NewSource("s")
	c := statsfs.NewCounters(tab)
	c.Store(0, 9)
	if err := s.AddValues(tab, c, statsfs.HiddenGroup); err != nil {
		t.Fatal(err)
	}
	root.AddSubordinate(s)
	if r, _ := root.GetByName("sum"); r.Uint64() != 9 {
		t.Errorf("hidden group not aggregated: %d", r.Uint64())
	}
	for _, smp := range root.Snapshot() {
		if smp.Path == "s" {
			t.Errorf("hidden group in the snapshot: %+v", smp)
		}
	}
}

func TestWalkAndSnapshot(t *testing.T) {
	tab := statsfs.NewTable(statsfs.Value{Name: "pkts", Type: statsfs.U64, Aggr: statsfs.Sum})
	root := statsfs.NewSource("kstat")
	net := statsfs.NewSource("net")
	root.AddSubordinate(net)
	_ = net.AddValues(tab, nil, 0)
	ns := statsfs.NewInstance("netns", "blue")
	net.AddSubordinate(ns)
	for i, name := range []string{"eth0", "eth1", "ghost"} {
		dev := statsfs.NewInstance("device", name)
		ns.AddSubordinate(dev)
		_ = dev.AddValues(tab, statsfs.RecordFunc(func(int) uint64 { return uint64(i + 1) }), 0)
		dev.SetHidden(name == "ghost")
	}
	var paths []string
	root.Walk(func(path string, labels []statsfs.Label, _ *statsfs.Source) bool {
		paths = append(paths, fmt.Sprintf("%s%v", path, labels))
		return true
	})
	want := "[] net[] net/blue[{netns blue}] net/blue/eth0[{netns blue} {device eth0}] net/blue/eth1[{netns blue} {device eth1}]"
	if got := strings.Join(paths, " "); got != want {
		t.Errorf("walk:\n got %s\nwant %s", got, want)
	}
	// Skipping a subtree.
	n := 0
	root.Walk(func(path string, _ []statsfs.Label, _ *statsfs.Source) bool {
		n++
		return path != "net"
	})
	if n != 2 {
		t.Errorf("walk visited %d sources with net skipped, want 2", n)
	}
	var got []string
	for _, smp := range root.Snapshot() {
		got = append(got, fmt.Sprintf("%s/%s=%s agg=%v labels=%d", smp.Path, smp.Value.Name, smp.Reading, smp.Aggregate, len(smp.Labels)))
	}
	wantS := []string{
		"net/pkts=6 agg=true labels=0", // the hidden ghost (3) counts
		"net/blue/eth0/pkts=1 agg=false labels=2",
		"net/blue/eth1/pkts=2 agg=false labels=2",
	}
	if strings.Join(got, "\n") != strings.Join(wantS, "\n") {
		t.Errorf("snapshot:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantS, "\n"))
	}
	root.SetHidden(true)
	if s := root.Snapshot(); len(s) != 0 {
		t.Errorf("hidden root gives %d samples", len(s))
	}
}

// TestConcurrentUse updates, reads, clears and restructures a tree from
// many goroutines; run with -race.
func TestConcurrentUse(t *testing.T) {
	tab := kinds(statsfs.U64)
	root := statsfs.NewSource("root")
	_ = root.AddValues(tab, nil, 0)
	var leaves []*statsfs.Counters
	for i := range 8 {
		s, c := leaf(t, fmt.Sprint(i), tab, 0)
		root.AddSubordinate(s)
		leaves = append(leaves, c)
	}
	const n = 2000
	var wg sync.WaitGroup
	for _, c := range leaves {
		wg.Go(func() {
			for range n {
				c.Add(0, 1)
				c.Store(2, 3)
			}
		})
	}
	wg.Go(func() {
		for i := range n / 10 {
			s, _ := leaf(t, fmt.Sprint("tmp", i), tab, 1)
			root.AddSubordinate(s)
			_ = s.AddControl(&statsfs.Control{Name: "c"})
			s.SetHidden(i%2 == 0)
			root.RemoveSubordinate(s)
		}
	})
	for range 4 {
		wg.Go(func() {
			for range n / 10 {
				_, _ = root.GetByName("sum")
				_ = root.Snapshot()
				_, _ = root.GetByName("max")
			}
		})
	}
	wg.Wait()
	r, _ := root.GetByName("sum")
	if r.Uint64() != 8*n {
		t.Errorf("sum after concurrent adds = %d, want %d", r.Uint64(), 8*n)
	}
	if err := root.Clear(tab, 0); err != nil {
		t.Fatal(err)
	}
	if r, _ := root.GetByName("sum"); r.Uint64() != 0 {
		t.Errorf("sum after clear = %d", r.Uint64())
	}
}

// TestFindVisible: FindVisible finds what Find finds, except below or at a
// hidden source, and nil for a missing one.
func TestFindVisible(t *testing.T) {
	root := statsfs.NewSource("root")
	a := statsfs.NewSource("a")
	b := statsfs.NewSource("b")
	a.AddSubordinate(b)
	root.AddSubordinate(a)
	if got := root.FindVisible("a/b"); got != b {
		t.Fatalf("FindVisible(a/b) = %v, want b", got)
	}
	if got := root.FindVisible(""); got != root {
		t.Fatalf("FindVisible(\"\") = %v, want the root", got)
	}
	if got := root.FindVisible("a/x"); got != nil {
		t.Fatalf("FindVisible(a/x) = %v, want nil", got)
	}
	a.SetHidden(true)
	if root.Find("a/b") != b {
		t.Fatal("Find(a/b) under a hidden source: want b")
	}
	if got := root.FindVisible("a/b"); got != nil {
		t.Fatalf("FindVisible(a/b) under hidden a = %v, want nil", got)
	}
	if got := root.FindVisible("a"); got != nil {
		t.Fatalf("FindVisible(a) of hidden a = %v, want nil", got)
	}
}

// TestAppendValues: AppendValues appends what Values returns, hidden
// groups included, after what dst holds.
func TestAppendValues(t *testing.T) {
	tab := statsfs.NewTable(statsfs.Value{Name: "a", Type: statsfs.U64}, statsfs.Value{Name: "b", Type: statsfs.U64})
	s := statsfs.NewSource("s")
	if err := s.AddValues(tab, nil, statsfs.HiddenGroup); err != nil {
		t.Fatal(err)
	}
	if err := s.AddValues(tab, statsfs.NewCounters(tab), 0); err != nil {
		t.Fatal(err)
	}
	other := statsfs.NewSource("o")
	if err := other.AddValues(tab, statsfs.NewCounters(tab), 0); err != nil {
		t.Fatal(err)
	}
	dst := other.AppendValues(nil)
	got := s.AppendValues(dst)
	want := append(other.Values(), s.Values()...)
	if len(got) != 6 || len(want) != 6 {
		t.Fatalf("%d values, want 6", len(got))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("value %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if got[1].Hidden() || !got[2].Hidden() || !got[3].Hidden() || got[4].Hidden() {
		t.Error("the hidden group's values should come first and be hidden")
	}
}
