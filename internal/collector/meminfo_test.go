package collector

import (
	"errors"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/procfs"

	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/statsfs"
)

// meminfoOracle parses "Key: N kB" lines with the standard library, to
// check parseMeminfo against.
func meminfoOracle(text string) map[string]uint64 {
	out := map[string]uint64{}
	for _, l := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(l, ":")
		fs := strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '\t' })
		if !ok || len(fs) != 2 || fs[1] != "kB" {
			continue
		}
		if n, err := strconv.ParseUint(fs[0], 10, 64); err == nil && n <= math.MaxUint64/1024 {
			out[k] = n
		}
	}
	return out
}

func TestParseMeminfoFixture(t *testing.T) {
	b, err := os.ReadFile(testutil.Fixture(t, "bufstat", "real", "proc", "meminfo"))
	if err != nil {
		t.Fatal(err)
	}
	var m meminfoBytes
	if err := parseMeminfo(b, &m); err != nil {
		t.Fatal(err)
	}
	want := meminfoOracle(string(b))
	for i, k := range meminfoKeys {
		if m.v[i] != want[k]*1024 || m.found&(1<<i) == 0 {
			t.Errorf("%s = %d bytes, want %d kB", k, m.v[i], want[k])
		}
	}
	if n := testing.AllocsPerRun(50, func() { _ = parseMeminfo(b, &m) }); n != 0 {
		t.Errorf("parseMeminfo allocates %v times per parse", n)
	}
}

// TestParseMeminfoErrors: a line that cannot be read is skipped and
// counted, with the reason; the good lines around it are kept.
func TestParseMeminfoErrors(t *testing.T) {
	for _, x := range []struct{ in, want string }{
		{"MemTotal: 12 kB\nbroken line\n", `line 2 "broken line": no "key:"`},
		{"MemTotal:\n", "MemTotal is not a number of kB"},
		{"MemTotal: 12\n", "MemTotal is not in kB"},
		{"MemTotal: 12 kB x\n", "MemTotal is not in kB"},
		{"Dirty: -1 kB\n", "Dirty is not a number of kB"},
		{"Cached: 18014398509481984 kB\n", "does not fit in 64 bits"},
	} {
		var m meminfoBytes
		err := parseMeminfo([]byte(x.in+"Buffers: 7 kB\n"), &m)
		var sk *Skipped
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), x.want) || !errors.As(err, &sk) || sk.Lines != 1 {
			t.Errorf("parseMeminfo(%q) = %v, want one skipped line: %q", x.in, err, x.want)
		}
		if m.found&(1<<meminfoBuffers) == 0 || m.v[meminfoBuffers] != 7*1024 {
			t.Errorf("parseMeminfo(%q) lost the good line after it", x.in)
		}
	}
	// Fields kstat does not use may look like anything after their colon.
	var m meminfoBytes
	if err := parseMeminfo([]byte("HugePages_Total:       0\nWeird: x y z\nMemTotal: 1 kB\n"), &m); err != nil {
		t.Fatal(err)
	}
	if m.v[meminfoMemTotal] != 1024 || bits.OnesCount32(m.found) != 1 {
		t.Fatalf("got %v, found %b", m.v, m.found)
	}
}

// FuzzParseMeminfo checks that parseMeminfo never panics and that the
// fields it keeps, whatever lines it skips, are the standard-library
// oracle's.
func FuzzParseMeminfo(f *testing.F) {
	for _, c := range []string{"real", "missing-fields", "truncated", "huge", "overflow"} {
		if b, err := os.ReadFile(testutil.Fixture(f, "bufstat", c, "proc", "meminfo")); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("MemTotal: 1 kB\nMemTotal: 2 kB"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m meminfoBytes
		if err := parseMeminfo(b, &m); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		// The last line of a key wins in both parsers.
		want := meminfoOracle(string(b))
		for i, k := range meminfoKeys {
			w, ok := want[k]
			if got := m.found&(1<<i) != 0; got != ok || m.v[i] != w*1024 {
				t.Fatalf("%s: found %v = %d, oracle %v %d kB", k, got, m.v[i], ok, w)
			}
		}
	})
}

func TestMeminfoCollector(t *testing.T) {
	dir := t.TempDir()
	write := func(text string) {
		if err := os.WriteFile(filepath.Join(dir, "meminfo"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	full := "MemTotal: 100 kB\nMemFree: 50 kB\nMemAvailable: 60 kB\nBuffers: 1 kB\nCached: 2 kB\nDirty: 3 kB\nWriteback: 4 kB\nSlab: 5 kB\nSReclaimable: 6 kB\nSUnreclaim: 7 kB\nPageTables: 8 kB\n"
	write(full)
	m := newMeminfo(Paths{Proc: dir})
	root := statsfs.NewSource("root")
	if err := m.attach(root); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]uint64{
		"memory/total": 100, "memory/free": 50, "memory/available": 60,
		"block/buffers": 1, "block/cached": 2, "block/dirty": 3, "block/writeback": 4,
		"mm/slab": 5, "mm/slab_reclaimable": 6, "mm/slab_unreclaimable": 7, "mm/page_tables": 8,
	} {
		d, name := filepath.Split(path)
		v, err := root.Find(strings.TrimSuffix(d, "/")).LookupName(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.Read().Uint64(); got != want*1024 {
			t.Errorf("%s = %d, want %d", path, got, want*1024)
		}
		if d := v.Value(); d.Unit != "bytes" || d.Flag != statsfs.Floating || d.Help == "" || d.Mode() != 0o444 {
			t.Errorf("%s: descriptor %+v", path, d)
		}
	}
	if st := m.Status(); st.Err != nil || st.Name != "meminfo" || st.Time.IsZero() {
		t.Fatalf("status %+v", st)
	}

	// A file that lost fields (no MemAvailable before Linux 3.14): the
	// others update, the lost ones are absent, and that is no error.
	write(strings.Replace(strings.Replace(full, "MemFree: 50", "MemFree: 51", 1), "MemAvailable: 60 kB\n", "", 1))
	waitMaxAge()
	free, _ := root.Find("memory").GetByName("free")
	avail, _ := root.Find("memory").GetByName("available")
	if free.Absent || free.Uint64() != 51*1024 || !avail.Absent {
		t.Errorf("without MemAvailable: free %+v, available %+v (want absent)", free, avail)
	}
	if st := m.Status(); st.Err != nil || st.Skipped != nil {
		t.Errorf("a missing field is not an error: status %+v", st)
	}

	// Unreadable lines: the good ones are kept, the bad fields absent, the
	// lines counted.
	write("MemTotal: 999 kB\nMemFree: oops kB\nnonsense\nCached: 184467440737095516150 kB\n")
	waitMaxAge()
	total, _ := root.Find("memory").GetByName("total")
	free, _ = root.Find("memory").GetByName("free")
	cached, _ := root.Find("block").GetByName("cached")
	if total.Absent || total.Uint64() != 999*1024 || !free.Absent || !cached.Absent {
		t.Errorf("after bad lines: total %+v, free %+v, cached %+v", total, free, cached)
	}
	if st := m.Status(); st.Err != nil || !errors.Is(st.Skipped, ErrMalformed) || st.SkippedLines != 3 {
		t.Errorf("after bad lines: status %+v", st)
	}

	// No file at all: every value is absent and the read failed.
	if err := os.Remove(filepath.Join(dir, "meminfo")); err != nil {
		t.Fatal(err)
	}
	waitMaxAge()
	total, _ = root.Find("memory").GetByName("total")
	if !total.Absent || m.Status().Err == nil {
		t.Errorf("without the file: total %+v, status %v", total, m.Status().Err)
	}
}

// BenchmarkMeminfo is one read and parse of this machine's /proc/meminfo
// by the collector.
func BenchmarkMeminfo(b *testing.B) {
	m := newMeminfo(Paths{Proc: "/proc"})
	b.ReportAllocs()
	for b.Loop() {
		if err := m.read(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMeminfoProcfs is the same read by github.com/prometheus/procfs,
// for comparison.
func BenchmarkMeminfoProcfs(b *testing.B) {
	fs, err := procfs.NewFS("/proc")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fs.Meminfo(); err != nil {
			b.Fatal(err)
		}
	}
}
