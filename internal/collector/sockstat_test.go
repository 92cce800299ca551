package collector

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/statsfs"
)

// sockstatOracle reads "PROTO: key value ..." lines with the standard
// library: out["TCP mem"] and so on.
func sockstatOracle(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		fs := strings.Fields(l)
		for i := 1; i+1 < len(fs); i += 2 {
			v, err := strconv.ParseUint(fs[i+1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			out[strings.TrimSuffix(fs[0], ":")+" "+fs[i]] = v
		}
	}
	return out
}

func TestSockstatFixture(t *testing.T) {
	for _, c := range []string{"real", "huge"} {
		t.Run(c, func(t *testing.T) {
			proc := testutil.Fixture(t, "bufstat", c, "proc")
			s := newSockstat(Paths{Proc: proc})
			root := statsfs.NewSource("root")
			if err := s.attach(root); err != nil {
				t.Fatal(err)
			}
			if err := s.Status().Err; err != nil {
				t.Fatal(err)
			}
			want := sockstatOracle(t, filepath.Join(proc, "net", "sockstat"))
			page := uint64(os.Getpagesize())
			for name, key := range map[string]string{
				"sockets_used": "sockets used", "tcp_inuse": "TCP inuse", "tcp_orphan": "TCP orphan", "tcp_tw": "TCP tw",
				"tcp_alloc": "TCP alloc", "tcp_mem_pages": "TCP mem", "udp_inuse": "UDP inuse", "udp_mem_pages": "UDP mem",
				"udplite_inuse": "UDPLITE inuse", "raw_inuse": "RAW inuse", "frag_inuse": "FRAG inuse", "frag_memory_bytes": "FRAG memory",
			} {
				if r, _ := root.Find("net").GetByName(name); r.Uint64() != want[key] {
					t.Errorf("net/%s = %d, want %d", name, r.Uint64(), want[key])
				}
			}
			for name, key := range map[string]string{"tcp_mem_bytes": "TCP mem", "udp_mem_bytes": "UDP mem"} {
				if r, _ := root.Find("net").GetByName(name); r.Uint64() != want[key]*page {
					t.Errorf("net/%s = %d, want %d pages of %d", name, r.Uint64(), want[key], page)
				}
			}
			six := root.Find("net/sockstat6")
			if _, err := os.Stat(filepath.Join(proc, "net", "sockstat6")); err != nil {
				if !six.Hidden() {
					t.Error("net/sockstat6 shown without a sockstat6 file")
				}
				return
			}
			want6 := sockstatOracle(t, filepath.Join(proc, "net", "sockstat6"))
			for name, key := range map[string]string{"tcp_inuse": "TCP6 inuse", "udp_inuse": "UDP6 inuse", "raw_inuse": "RAW6 inuse", "frag_memory_bytes": "FRAG6 memory"} {
				if r, _ := six.GetByName(name); r.Uint64() != want6[key] || six.Hidden() {
					t.Errorf("net/sockstat6/%s = %d, want %d", name, r.Uint64(), want6[key])
				}
			}
		})
	}
}

func TestSockstatErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, "net", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := "sockets: used 5\nTCP: inuse 1 orphan 0 tw 2 alloc 3 mem 4\nUDP: inuse 1 mem 1\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n"
	write("sockstat", good)
	s := newSockstat(Paths{Proc: dir})
	root := statsfs.NewSource("root")
	if err := s.attach(root); err != nil {
		t.Fatal(err)
	}
	if err := s.Status().Err; err != nil || !root.Find("net/sockstat6").Hidden() {
		t.Fatalf("without sockstat6: %v, hidden %v", err, root.Find("net/sockstat6").Hidden())
	}
	// A field a file lacks is absent; a bad pair makes its line count as
	// skipped, and the line's other pairs and the other lines are kept.
	for _, x := range []struct {
		text, want string
		absent     []string
		skipped    bool
	}{
		{strings.Replace(good, " mem 4", "", 1), "", []string{"tcp_mem_pages", "tcp_mem_bytes"}, false},
		{strings.Replace(good, "mem 4", "mem 4503599627370496", 1), "do not fit in 64 bits", []string{"tcp_mem_bytes"}, true},
		{strings.Replace(good, "RAW: inuse 0\n", "", 1), "", []string{"raw_inuse"}, false},
		{strings.Replace(good, "orphan 0", "orphan 18446744073709551616", 1), `"18446744073709551616" is not a count`, []string{"tcp_orphan"}, true},
		{strings.Replace(good, "alloc 3 mem 4", "alloc", 1), `TCP alloc: "" is not a count`, []string{"tcp_alloc", "tcp_mem_pages", "tcp_mem_bytes"}, true},
		{good + "garbage line\nExtra: unknown 1 fields 2\n", `"garbage line": no "PROTO:"`, nil, true},
	} {
		write("sockstat", x.text)
		waitMaxAge()
		if r, _ := root.Find("net").GetByName("tcp_tw"); r.Absent || r.Uint64() != 2 {
			t.Errorf("%q: tcp_tw %+v, want 2 kept", x.text, r)
		}
		for _, name := range x.absent {
			if r, _ := root.Find("net").GetByName(name); !r.Absent {
				t.Errorf("%q: %s = %+v, want absent", x.text, name, r)
			}
		}
		st := s.Status()
		if st.Err != nil || (st.Skipped != nil) != x.skipped || (x.skipped && (!strings.Contains(st.Skipped.Error(), x.want) || !errors.Is(st.Skipped, ErrMalformed))) {
			t.Errorf("%q: status %+v, want skipped %v: %q", x.text, st, x.skipped, x.want)
		}
	}
}

// BenchmarkSockstat is one read and parse of /proc/net/sockstat and
// sockstat6.
func BenchmarkSockstat(b *testing.B) {
	s := newSockstat(Paths{Proc: "/proc"})
	b.ReportAllocs()
	for b.Loop() {
		if err := s.read(); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseSockstat: never a panic; a field is found only with the value
// its "PROTO: key value" pair gives (times the page size for _bytes), and
// an error is ErrMalformed.
func FuzzParseSockstat(f *testing.F) {
	for _, c := range []string{"real", "huge", "truncated", "overflow"} {
		if b, err := os.ReadFile(testutil.Fixture(f, "bufstat", c, "proc", "net", "sockstat")); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("TCP: inuse 1 orphan\nTCP: mem 18446744073709551615\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var vals [len(sockstatFields)]uint64
		found, err := parseSockstat(b, sockstatFields[:], 4096, vals[:])
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
		for i, f := range sockstatFields {
			if found&(1<<i) == 0 {
				if vals[i] != 0 {
					t.Fatalf("%s %s absent but %d", f.proto, f.key, vals[i])
				}
				continue
			}
			want := strings.Fields(f.key + " ")[0]
			if !strings.Contains(string(b), want) || (f.pages && vals[i]%4096 != 0) {
				t.Fatalf("%s %s = %d from %q", f.proto, f.key, vals[i], b)
			}
		}
	})
}
