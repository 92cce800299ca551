package bufstat_test

import (
	"bufio"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kstat/kstat/internal/bufstat"
	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/statsfs"
)

var update = flag.Bool("update", false, "rewrite the golden report.txt and report.json files of testdata/bufstat/*")

// fixedClock is the report time of every golden file.
var fixedClock = time.UnixMilli(1716294825123)

// fixtureTree attaches the four bufstat collectors over testdata/bufstat/<c>.
func fixtureTree(t testing.TB, c string) (*statsfs.Source, *collector.Registry) {
	t.Helper()
	// Relative paths, so that the errors in the golden files do not
	// depend on where the module is checked out.
	dir := filepath.Join("..", "..", "testdata", "bufstat", c)
	paths := collector.Paths{Proc: filepath.Join(dir, "proc"), Sys: filepath.Join(dir, "sys")}
	root := statsfs.NewSource("kstat")
	reg := &collector.Registry{}
	if err := reg.Build(collector.Config{Paths: paths, Root: root}, collector.Only("sockstat", "netdev", "meminfo", "slabinfo")); err != nil {
		t.Fatal(err)
	}
	return root, reg
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

var cases = []string{"real", "many-interfaces", "missing-fields", "truncated", "huge", "overflow", "missing-files", "empty"}

func TestGolden(t *testing.T) {
	for _, c := range cases {
		t.Run(c, func(t *testing.T) {
			root, reg := fixtureTree(t, c)
			rep := bufstat.Build(root, reg, fixedClock)
			dir := testutil.Fixture(t, "bufstat", c)
			golden(t, filepath.Join(dir, "report.txt"), []byte(rep.Text()))
			golden(t, filepath.Join(dir, "report.json"), rep.JSON())
			if got, want := rep.Failed(), c == "empty"; got != want {
				t.Errorf("Failed() = %v, want %v", got, want)
			}
		})
	}
}

// meminfoKB reads one field of a fixture's meminfo, independently of the
// collector's parser.
func meminfoKB(t *testing.T, path, key string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 && fs[0] == key+":" {
			v, err := strconv.ParseUint(fs[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no %s in %s", key, path)
	return 0
}

// netdevSums adds up each counter column of a fixture's net/dev.
func netdevSums(t *testing.T, path string) (devs int, sums [16]uint64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(l, ":")
		if !ok || strings.Contains(l, "|") {
			continue
		}
		_ = name
		fs := strings.Fields(rest)
		if len(fs) != 16 {
			t.Fatalf("%s: %q", path, l)
		}
		devs++
		for i, f := range fs {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			sums[i] += v
		}
	}
	return devs, sums
}

// TestValuesMatchFixture checks the report's numbers against the fixture
// files read here with a separate, simple parser.
func TestValuesMatchFixture(t *testing.T) {
	for _, c := range []string{"real", "many-interfaces"} {
		t.Run(c, func(t *testing.T) {
			root, reg := fixtureTree(t, c)
			rep := bufstat.Build(root, reg, fixedClock)
			proc := filepath.Join(testutil.Fixture(t, "bufstat", c), "proc")
			mi := filepath.Join(proc, "meminfo")
			for _, x := range []struct {
				key string
				got bufstat.Num
			}{
				{"MemTotal", rep.Memory.Total}, {"MemFree", rep.Memory.Free}, {"MemAvailable", rep.Memory.Available},
				{"Buffers", rep.Block.Buffers}, {"Cached", rep.Block.Cached}, {"Dirty", rep.Block.Dirty},
				{"Writeback", rep.Block.Writeback}, {"Slab", rep.MM.Slab}, {"SReclaimable", rep.MM.SReclaimable},
				{"SUnreclaim", rep.MM.SUnreclaim}, {"PageTables", rep.MM.PageTables},
			} {
				if want := meminfoKB(t, mi, x.key) * 1024; x.got == nil || *x.got != want {
					t.Errorf("%s = %v bytes, want %d", x.key, x.got, want)
				}
			}
			devs, sums := netdevSums(t, filepath.Join(proc, "net", "dev"))
			if len(rep.Network.Devices) != devs {
				t.Errorf("%d devices, want %d", len(rep.Network.Devices), devs)
			}
			tot := rep.Network.Total
			if tot == nil {
				t.Fatalf("no device totals: %s", rep.Network.DevicesError)
			}
			for _, x := range []struct {
				name string
				got  bufstat.Num
				col  int
			}{
				{"rx_bytes", tot.RxBytes, 0}, {"rx_packets", tot.RxPackets, 1}, {"rx_errors", tot.RxErrors, 2}, {"rx_dropped", tot.RxDropped, 3},
				{"tx_bytes", tot.TxBytes, 8}, {"tx_packets", tot.TxPackets, 9}, {"tx_errors", tot.TxErrors, 10}, {"tx_dropped", tot.TxDropped, 11},
			} {
				if x.got == nil || *x.got != sums[x.col] {
					t.Errorf("net/dev sum of %s = %v, want %d", x.name, x.got, sums[x.col])
				}
			}
		})
	}
}

// TestSectionErrors checks that a file that cannot be read is named in
// its section while the other sections print, and that a file with
// missing fields or unreadable lines keeps the rest: the missing values
// say "unavailable" (and sums over them too), the skipped lines are named.
func TestSectionErrors(t *testing.T) {
	for _, x := range []struct {
		c    string
		want []string
	}{
		{"missing-fields", []string{
			"Buffers: 23920 kB", "PageTables: unavailable", "Available memory: unavailable",
			"Total memory: 24684084 kB", "Kernel buffers: unavailable",
			"TCP: inuse=1 orphan=0 tw=0 alloc=1 mem=unavailable pages", "Sockets in use: 16",
			"  lo: rx_buffers=",
		}},
		{"truncated", []string{
			"  eth0: rx_buffers=unavailable", "  lo: rx_buffers=30 ", "all 4 devices: rx_buffers=unavailable",
			"Writeback pages: unavailable", "Buffers: 23920 kB",
			"netdev: ", "net/dev: skipped 1 unreadable line(s), the first: malformed: line 6 (eth0): 3 counters, want 16",
			"meminfo: ", "line 20 \"Writeback:\": Writeback is not a number of kB",
			"TCP: inuse=",
		}},
		{"overflow", []string{
			"(eth0): counter 2 \"18446744073709551616\" is not an unsigned 64-bit number",
			"Buffers 18014398509481984 kB does not fit in 64 bits as bytes", "Buffers: unavailable",
		}},
		{"missing-files", []string{
			"net/sockstat: no such file or directory", "net/dev: no such file or directory",
			"slabinfo: no such file or directory", "Total memory: ",
		}},
	} {
		t.Run(x.c, func(t *testing.T) {
			root, reg := fixtureTree(t, x.c)
			text := bufstat.Build(root, reg, fixedClock).Text()
			for _, w := range x.want {
				if !strings.Contains(text, w) {
					t.Errorf("report lacks %q:\n%s", w, text)
				}
			}
		})
	}
}

// TestJSONIsTheSameData decodes the JSON and compares it with the report.
// TestJSONIsTheSameData, on every fixture: the JSON read back prints the
// same text, and the totals the text computes (socket buffer memory) are
// in the JSON too, equal to the text's.
func TestJSONIsTheSameData(t *testing.T) {
	for _, c := range cases {
		t.Run(c, func(t *testing.T) {
			root, reg := fixtureTree(t, c)
			rep := bufstat.Build(root, reg, fixedClock)
			var back bufstat.Report
			if err := json.Unmarshal(rep.JSON(), &back); err != nil {
				t.Fatal(err)
			}
			if back.Text() != rep.Text() {
				t.Errorf("the JSON does not carry the report's data:\n%s\n---\n%s", back.Text(), rep.Text())
			}
			var raw struct {
				Network struct {
					Sockets *struct {
						BufferBytes *uint64 `json:"buffer_bytes"`
					} `json:"sockets"`
				} `json:"network"`
			}
			if err := json.Unmarshal(rep.JSON(), &raw); err != nil {
				t.Fatal(err)
			}
			m := regexp.MustCompile(`Socket buffer allocation: (\d+) kB`).FindStringSubmatch(rep.Text())
			switch {
			case m == nil && raw.Network.Sockets != nil && raw.Network.Sockets.BufferBytes != nil:
				t.Errorf("JSON has buffer_bytes %d, the text no total", *raw.Network.Sockets.BufferBytes)
			case m != nil && (raw.Network.Sockets == nil || raw.Network.Sockets.BufferBytes == nil):
				t.Errorf("the text shows %s kB of socket buffers, the JSON no buffer_bytes", m[1])
			case m != nil && strconv.FormatUint(*raw.Network.Sockets.BufferBytes/1024, 10) != m[1]:
				t.Errorf("JSON buffer_bytes %d, text %s kB", *raw.Network.Sockets.BufferBytes, m[1])
			}
		})
	}
}

// BenchmarkBuildText is one report (Build and Text) over the real
// fixture's tree; the collectors reread their files only when their cache
// (50 ms, 2 s for slabinfo) has expired, so this is mostly the view.
func BenchmarkBuildText(b *testing.B) {
	root, reg := fixtureTree(b, "real")
	b.ReportAllocs()
	for b.Loop() {
		_ = bufstat.Build(root, reg, fixedClock).Text()
	}
}
