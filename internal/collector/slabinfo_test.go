package collector

import (
	"errors"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/statsfs"
)

func TestSlabinfoFixture(t *testing.T) {
	proc := testutil.Fixture(t, "bufstat", "real", "proc")
	b, err := os.ReadFile(proc + "/slabinfo")
	if err != nil {
		t.Fatal(err)
	}
	// The oracle: name, active objects and slab bytes of every cache.
	type cache struct {
		name          string
		active, bytes uint64
	}
	var all []cache
	var active, total uint64
	page := uint64(os.Getpagesize())
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n")[2:] {
		fs := strings.Fields(l)
		num := func(i int) uint64 {
			v, err := strconv.ParseUint(fs[i], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		c := cache{fs[0], num(1), num(14) * num(5) * page}
		all = append(all, c)
		active += c.active
		total += c.bytes
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].bytes != all[j].bytes {
			return all[i].bytes > all[j].bytes
		}
		return all[i].name < all[j].name
	})

	s := newSlabinfo(Paths{Proc: proc})
	root := statsfs.NewSource("root")
	if err := s.attach(root); err != nil {
		t.Fatal(err)
	}
	dir := root.Find("mm/slabinfo")
	if err := s.Status().Err; err != nil || dir.Hidden() {
		t.Fatalf("status %v, hidden %v", err, dir.Hidden())
	}
	for name, want := range map[string]uint64{"caches": uint64(len(all)), "active_objects": active, "total_bytes": total} {
		if r, _ := dir.GetByName(name); r.Uint64() != want {
			t.Errorf("mm/slabinfo/%s = %d, want %d", name, r.Uint64(), want)
		}
	}
	subs := dir.Subordinates()
	if len(subs) != len(all) {
		t.Fatalf("%d cache sources, want one per cache, %d", len(subs), len(all))
	}
	for i, c := range all {
		src := subs[i]
		if src.Name() != c.name || src.Label() != "cache" {
			t.Errorf("cache %d is %s (%s), want %s", i, src.Name(), src.Label(), c.name)
			continue
		}
		if r, _ := src.GetByName("total_bytes"); r.Uint64() != c.bytes {
			t.Errorf("%s total_bytes %d, want %d", c.name, r.Uint64(), c.bytes)
		}
		if r, _ := src.GetByName("active_objects"); r.Uint64() != c.active {
			t.Errorf("%s active_objects %d, want %d", c.name, r.Uint64(), c.active)
		}
	}
	if !strings.Contains(SlabCacheTable.Value(0).Help, "refreshed at most every 2 s") {
		t.Error("the Help does not say slabinfo is cached longer")
	}
}

func TestSlabinfoMissingStaysHidden(t *testing.T) {
	s := newSlabinfo(Paths{Proc: testutil.Fixture(t, "bufstat", "missing-files", "proc")})
	root := statsfs.NewSource("root")
	if err := s.attach(root); err != nil {
		t.Fatal(err)
	}
	if err := s.Status().Err; !os.IsNotExist(err) || !root.Find("mm/slabinfo").Hidden() {
		t.Fatalf("status %v, hidden %v", err, root.Find("mm/slabinfo").Hidden())
	}
}

// BenchmarkSlabinfo is one read and parse of /proc/slabinfo (with procfs);
// it needs root.
func BenchmarkSlabinfo(b *testing.B) {
	testutil.RequireRoot(b)
	s := newSlabinfo(Paths{Proc: "/proc"})
	b.ReportAllocs()
	for b.Loop() {
		if err := s.read(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSlabinfoBadLines: a cache line that cannot be read is skipped and
// counted, the other caches are kept, and the totals over all caches are
// absent (a sum of some caches would be wrong); another version fails.
func TestSlabinfoBadLines(t *testing.T) {
	head := "slabinfo - version: 2.1\n# name <active_objs> ...\n"
	line := func(name, active string) string {
		return name + " " + active + " 10 64 32 1 : tunables 0 0 0 : slabdata 1 2 0\n"
	}
	dir := t.TempDir()
	write := func(text string) {
		if err := os.WriteFile(dir+"/slabinfo", []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(head + line("a", "5") + line("b", "18446744073709551616") + "truncated 1 2\n" + line("a", "6") + line("c", "7"))
	s := newSlabinfo(Paths{Proc: dir})
	var offset time.Duration // moves the collector's clock past its cache
	s.now = func() time.Time { return time.Now().Add(offset) }
	root := statsfs.NewSource("root")
	if err := s.attach(root); err != nil {
		t.Fatal(err)
	}
	st := s.Status()
	if st.Err != nil || st.Skipped == nil || st.SkippedLines != 3 {
		t.Fatalf("status %+v, want 3 skipped lines", st)
	}
	slab := root.Find("mm/slabinfo")
	for _, c := range []struct {
		name   string
		active uint64
	}{{"a", 5}, {"c", 7}} {
		if r, _ := slab.Find(c.name).GetByName("active_objects"); r.Absent || r.Uint64() != c.active {
			t.Errorf("%s active_objects %+v, want %d", c.name, r, c.active)
		}
	}
	if slab.Find("b") != nil {
		t.Error("the unreadable cache b has a source")
	}
	for _, name := range []string{"caches", "active_objects", "total_bytes"} {
		if r, _ := slab.GetByName(name); !r.Absent {
			t.Errorf("total %s = %+v over a skipped line, want absent", name, r)
		}
	}
	write(head + line("a", "5") + line("c", "7"))
	offset += SlabinfoMaxAge
	if r, _ := slab.GetByName("active_objects"); r.Absent || r.Uint64() != 12 {
		t.Errorf("total active_objects %+v once every line reads, want 12", r)
	}
	write("slabinfo - version: 1.1\n" + line("a", "5"))
	offset += SlabinfoMaxAge
	if r, _ := slab.Find("a").GetByName("active_objects"); !r.Absent || s.Status().Err == nil {
		t.Errorf("version 1.1: a %+v, status %v; want absent and an error", r, s.Status().Err)
	}
}

// FuzzParseSlabinfo: never a panic; every cache kept is a valid, distinct
// name, sorted largest first; an error is ErrMalformed.
func FuzzParseSlabinfo(f *testing.F) {
	for _, c := range []string{"real", "huge", "truncated"} {
		if b, err := os.ReadFile(testutil.Fixture(f, "bufstat", c, "proc", "slabinfo")); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		caches, err := parseSlabinfo(b, 4096)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for i, c := range caches {
			if !validName([]byte(c.name)) || seen[c.name] || (i > 0 && caches[i-1].totalB < c.totalB) {
				t.Fatalf("cache %d %+v in %+v", i, c, caches)
			}
			seen[c.name] = true
		}
	})
}
