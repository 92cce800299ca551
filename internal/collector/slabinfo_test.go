package collector

import (
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

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
	if len(subs) != SlabinfoTop {
		t.Fatalf("%d cache sources, want %d", len(subs), SlabinfoTop)
	}
	for i, c := range all[:SlabinfoTop] {
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
