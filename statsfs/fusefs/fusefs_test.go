package fusefs_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/internal/testutil/host"
	"github.com/kstat/kstat/statsfs"
	"github.com/kstat/kstat/statsfs/fusefs"
)

var (
	topTable = statsfs.NewTable(
		statsfs.Value{Name: "counter", Help: "a counter", Type: statsfs.U64, Unit: "packets"},
		statsfs.Value{Name: "gauge", Help: "a gauge", Type: statsfs.S64, Flag: statsfs.Floating},
		statsfs.Value{Name: "kernel", Help: "a kernel counter", Type: statsfs.U64, ReadOnly: true},
		statsfs.Value{Name: "state", Help: "an enum", Type: statsfs.U8, Flag: statsfs.Floating,
			Show: func(r statsfs.Reading) string { return []string{"IDLE", "RUNNING"}[r.Raw%2] }},
	)
	devTable = statsfs.NewTable(
		statsfs.Value{Name: "packets", Help: "packets sent", Type: statsfs.U64, Aggr: statsfs.Sum, Unit: "packets"},
		statsfs.Value{Name: "mtu", Help: "largest MTU", Type: statsfs.U32, Aggr: statsfs.Max, Flag: statsfs.Floating},
	)
)

// tree is a test tree: kstat/{counter,gauge,kernel,state,limit,report},
// kstat/net/{packets,mtu} aggregating eth0, eth1 and a hidden device.
type tree struct {
	root, net        *statsfs.Source
	top              *statsfs.Counters
	eth0, eth1, hide *statsfs.Counters
	limit            atomic.Uint64
	logs             *logBuffer
}

func newTree(t testing.TB) *tree {
	tr := &tree{root: statsfs.NewSource("kstat"), net: statsfs.NewSource("net")}
	tr.top = statsfs.NewCounters(topTable)
	must(t, tr.root.AddValues(topTable, tr.top, 0))
	tr.top.Store(0, 42)
	tr.top.Store(1, uint64(5)^(1<<64-1)+1) // -5
	tr.top.Store(2, 7)
	tr.top.Store(3, 1)
	tr.root.AddSubordinate(tr.net)
	must(t, tr.net.AddValues(devTable, nil, 0))
	for _, d := range []struct {
		name   string
		c      **statsfs.Counters
		pkts   uint64
		mtu    uint64
		hidden bool
	}{{"eth0", &tr.eth0, 10, 1500, false}, {"eth1", &tr.eth1, 20, 9000, false}, {"secret", &tr.hide, 300, 65536, true}} {
		s := statsfs.NewInstance("device", d.name)
		*d.c = statsfs.NewCounters(devTable)
		(*d.c).Store(0, d.pkts)
		(*d.c).Store(1, d.mtu)
		must(t, s.AddValues(devTable, *d.c, 0))
		s.SetHidden(d.hidden)
		tr.net.AddSubordinate(s)
	}
	tr.limit.Store(10)
	must(t, tr.root.AddControl(&statsfs.Control{
		Name: "limit", Help: "a limit from 0 to 100",
		Read: func() string { return strconv.FormatUint(tr.limit.Load(), 10) + "\n" },
		Write: func(text string) error {
			v, err := strconv.ParseUint(text, 10, 64)
			if err != nil || v > 100 {
				return fmt.Errorf("%w: limit: %q is not a number from 0 to 100", statsfs.ErrInvalid, text)
			}
			tr.limit.Store(v)
			return nil
		},
	}))
	must(t, tr.root.AddControl(&statsfs.Control{
		Name: "report", Help: "a report",
		Read: func() string { return "all is well\n" },
	}))
	return tr
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// mount mounts root in a temporary directory and unmounts it at cleanup.
func mount(t testing.TB, root *statsfs.Source, logs *logBuffer) (*fusefs.Server, string) {
	t.Helper()
	host.RequireFUSE(t)
	dir := filepath.Join(t.TempDir(), "mnt")
	var log *slog.Logger
	if logs != nil {
		log = slog.New(slog.NewTextHandler(logs, nil))
	}
	srv, err := fusefs.Mount(dir, root, fusefs.Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return srv, dir
}

func mountTree(t *testing.T) (*tree, string) {
	tr := newTree(t)
	tr.logs = &logBuffer{}
	_, dir := mount(t, tr.root, tr.logs)
	return tr, dir
}

func read(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func names(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		n := e.Name()
		if e.IsDir() {
			n += "/"
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func TestReadValues(t *testing.T) {
	_, dir := mountTree(t)
	for file, want := range map[string]string{
		"counter":          "42\n",
		"gauge":            "-5\n",
		"kernel":           "7\n",
		"state":            "RUNNING",
		"net/packets":      "330\n", // the hidden device counts
		"net/mtu":          "65536\n",
		"net/eth0/packets": "10\n",
		"net/eth1/mtu":     "9000\n",
		"limit":            "10\n",
		"report":           "all is well\n",
	} {
		if got := read(t, filepath.Join(dir, file)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
}

func TestListing(t *testing.T) {
	_, dir := mountTree(t)
	if got, want := names(t, dir), []string{"counter", "gauge", "kernel", "limit", "net/", "report", "state"}; !slices.Equal(got, want) {
		t.Errorf("root lists %q, want %q", got, want)
	}
	if got, want := names(t, filepath.Join(dir, "net")), []string{"eth0/", "eth1/", "mtu", "packets"}; !slices.Equal(got, want) {
		t.Errorf("net lists %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "net", "secret")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("hidden source: stat gives %v, want not exist", err)
	}
}

func TestModesAndXattrs(t *testing.T) {
	_, dir := mountTree(t)
	for file, want := range map[string]os.FileMode{
		"":            os.ModeDir | 0o755,
		"net":         os.ModeDir | 0o755,
		"counter":     0o644,
		"gauge":       0o444,
		"kernel":      0o444,
		"state":       0o444,
		"net/packets": 0o644,
		"net/mtu":     0o444,
		"limit":       0o644,
		"report":      0o444,
	} {
		st, err := os.Stat(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("%s: mode %v, want %v", file, st.Mode(), want)
		}
	}
	for _, x := range []struct{ file, attr, want string }{
		{"counter", fusefs.XattrHelp, "a counter"},
		{"counter", fusefs.XattrUnit, "packets"},
		{"counter", fusefs.XattrType, "u64"},
		{"gauge", fusefs.XattrFlag, "floating"},
		{"net/packets", fusefs.XattrAggr, "sum"},
		{"limit", fusefs.XattrType, "control"},
		{"net/eth0", fusefs.XattrLabel, "device"},
	} {
		buf := make([]byte, 256)
		n, err := unix.Getxattr(filepath.Join(dir, x.file), x.attr, buf)
		if err != nil || string(buf[:n]) != x.want {
			t.Errorf("%s %s = %q, %v; want %q", x.file, x.attr, buf[:max(n, 0)], err, x.want)
		}
	}
	if _, err := unix.Getxattr(filepath.Join(dir, "gauge"), fusefs.XattrAggr, make([]byte, 64)); !errors.Is(err, unix.ENODATA) {
		t.Errorf("aggr of a simple value: %v, want ENODATA", err)
	}
}

func TestClear(t *testing.T) {
	tr, dir := mountTree(t)
	for _, text := range []string{"0", "0\n", " 0x0 \n", "00", "-0", "+0X00"} {
		tr.top.Store(0, 99)
		if err := os.WriteFile(filepath.Join(dir, "counter"), []byte(text), 0); err != nil {
			t.Fatalf("writing %q: %v", text, err)
		}
		if v := tr.top.Load(0); v != 0 {
			t.Errorf("after writing %q counter is %d", text, v)
		}
	}
	// Clearing the aggregate clears every value it covers, hidden too.
	must(t, os.WriteFile(filepath.Join(dir, "net", "packets"), []byte("0\n"), 0))
	for name, c := range map[string]*statsfs.Counters{"eth0": tr.eth0, "eth1": tr.eth1, "secret": tr.hide} {
		if v := c.Load(0); v != 0 {
			t.Errorf("%s packets = %d after clearing the aggregate", name, v)
		}
		if v := c.Load(1); v == 0 {
			t.Errorf("%s mtu was cleared too", name)
		}
	}
	if got := read(t, filepath.Join(dir, "net", "packets")); got != "0\n" {
		t.Errorf("aggregate after clear reads %q", got)
	}
}

func TestRefusedWrites(t *testing.T) {
	tr, dir := mountTree(t)
	for _, text := range []string{"1", "abc", "0 0", "0x", "08", "--0", "0.0", "\n", "0_0"} {
		err := os.WriteFile(filepath.Join(dir, "counter"), []byte(text), 0)
		if !errors.Is(err, syscall.EINVAL) {
			t.Errorf("writing %q to a counter: %v, want EINVAL", text, err)
		}
		if v := tr.top.Load(0); v != 42 {
			t.Fatalf("after writing %q the counter is %d, want 42 kept", text, v)
		}
	}
	for _, file := range []string{"gauge", "kernel", "state", "net/mtu", "report"} {
		f, err := os.OpenFile(filepath.Join(dir, file), os.O_WRONLY, 0)
		if err == nil {
			f.Close()
		}
		if !errors.Is(err, syscall.EACCES) {
			t.Errorf("opening %s for writing: %v, want EACCES", file, err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), []byte("0\n"), 0); !errors.Is(err, syscall.EACCES) {
			t.Errorf("writing %s: %v, want EACCES", file, err)
		}
	}
	if tr.top.Load(1) != uint64(1<<64-5) || tr.top.Load(2) != 7 || tr.eth0.Load(1) != 1500 {
		t.Error("a refused write changed a value")
	}
	if err := os.Chmod(filepath.Join(dir, "counter"), 0o666); !errors.Is(err, syscall.EPERM) {
		t.Errorf("chmod: %v, want EPERM", err)
	}
	logs := tr.logs.String()
	for _, want := range []string{"path=kernel", "read-only file opened for writing", `only 0 (to clear the value) may be written: \"abc\"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestControls(t *testing.T) {
	tr, dir := mountTree(t)
	limit := filepath.Join(dir, "limit")
	must(t, os.WriteFile(limit, []byte("50\n"), 0))
	if v := tr.limit.Load(); v != 50 {
		t.Errorf("limit = %d after writing 50", v)
	}
	if got := read(t, limit); got != "50\n" {
		t.Errorf("limit reads %q", got)
	}
	for _, bad := range []string{"500", "-1", "fifty"} {
		if err := os.WriteFile(limit, []byte(bad), 0); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("writing %q: %v, want EINVAL", bad, err)
		}
	}
	if got := read(t, limit); got != "50\n" {
		t.Errorf("limit reads %q after refused writes, want the old 50", got)
	}
	if !strings.Contains(tr.logs.String(), `is not a number from 0 to 100`) {
		t.Errorf("the control's reason is not logged:\n%s", tr.logs.String())
	}
}

func TestControlErrnos(t *testing.T) {
	root := statsfs.NewSource("r")
	for name, err := range map[string]error{
		"invalid": statsfs.ErrInvalid, "perm": statsfs.ErrPermission,
		"notfound": statsfs.ErrNotFound, "other": errors.New("boom"),
	} {
		must(t, root.AddControl(&statsfs.Control{Name: name, Read: func() string { return "" },
			Write: func(string) error { return fmt.Errorf("wrapped: %w", err) }}))
	}
	_, dir := mount(t, root, nil)
	for name, want := range map[string]syscall.Errno{
		"invalid": syscall.EINVAL, "perm": syscall.EACCES, "notfound": syscall.ENOENT, "other": syscall.EIO,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
}

func TestLiveTree(t *testing.T) {
	tr, dir := mountTree(t)
	// Fresh on every open.
	tr.top.Add(0, 1)
	if got := read(t, filepath.Join(dir, "counter")); got != "43\n" {
		t.Errorf("counter = %q after Add, want 43", got)
	}
	eth2 := statsfs.NewInstance("device", "eth2")
	c := statsfs.NewCounters(devTable)
	c.Store(0, 1000)
	must(t, eth2.AddValues(devTable, c, 0))
	tr.net.AddSubordinate(eth2)
	if got := read(t, filepath.Join(dir, "net", "eth2", "packets")); got != "1000\n" {
		t.Errorf("new source reads %q", got)
	}
	if got := read(t, filepath.Join(dir, "net", "packets")); got != "1330\n" {
		t.Errorf("aggregate with the new source = %q, want 1330", got)
	}
	if !slices.Contains(names(t, filepath.Join(dir, "net")), "eth2/") {
		t.Error("new source not listed")
	}
	tr.net.RemoveSubordinate(eth2)
	if _, err := os.Stat(filepath.Join(dir, "net", "eth2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removed source: stat gives %v", err)
	}
	if _, err := os.ReadFile(filepath.Join(dir, "net", "eth2", "packets")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removed source's value: %v", err)
	}
	if slices.Contains(names(t, filepath.Join(dir, "net")), "eth2/") {
		t.Error("removed source still listed")
	}
	// A source hidden after mount vanishes, shown again it comes back.
	eth0 := tr.net.Subordinate("eth0")
	eth0.SetHidden(true)
	if _, err := os.Stat(filepath.Join(dir, "net", "eth0")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("hidden source: %v", err)
	}
	eth0.SetHidden(false)
	if got := read(t, filepath.Join(dir, "net", "eth0", "packets")); got != "10\n" {
		t.Errorf("shown again: %q", got)
	}
	// Values added to a mounted source appear.
	extra := statsfs.NewTable(statsfs.Value{Name: "late", Type: statsfs.Bool, Flag: statsfs.Floating})
	must(t, tr.root.AddValues(extra, statsfs.RecordFunc(func(int) uint64 { return 5 }), 0))
	if got := read(t, filepath.Join(dir, "late")); got != "1\n" {
		t.Errorf("late bool = %q", got)
	}
}

// TestOpenFileKeepsText checks that an open file keeps the text of its
// open while a new open sees the new value.
func TestOpenFileKeepsText(t *testing.T) {
	tr, dir := mountTree(t)
	f, err := os.Open(filepath.Join(dir, "counter"))
	must(t, err)
	defer f.Close()
	tr.top.Store(0, 123456)
	b := make([]byte, 2)
	n, err := f.Read(b)
	must(t, err)
	rest := make([]byte, 16)
	m, _ := f.Read(rest)
	if got := string(b[:n]) + string(rest[:m]); got != "42\n" {
		t.Errorf("open file reads %q, want the 42 of its open", got)
	}
	if got := read(t, filepath.Join(dir, "counter")); got != "123456\n" {
		t.Errorf("new open reads %q", got)
	}
}

func TestConcurrent(t *testing.T) {
	tr, dir := mountTree(t)
	var bg, work sync.WaitGroup // background loops; readers and writers
	stop := make(chan struct{})
	errs := make(chan error, 64)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	// Updaters.
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			tr.eth0.Add(0, 1)
			tr.top.Add(0, 1)
			time.Sleep(50 * time.Microsecond)
		}
	})
	// Structure changes.
	bg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s := statsfs.NewInstance("device", fmt.Sprintf("tmp%d", i%4))
			if err := s.AddValues(devTable, statsfs.NewCounters(devTable), 0); err != nil {
				report(err)
			}
			tr.net.AddSubordinate(s)
			time.Sleep(50 * time.Microsecond)
			tr.net.RemoveSubordinate(s)
		}
	})
	const readers, writers, rounds = 8, 4, 50
	for range readers {
		work.Go(func() {
			for range rounds {
				for _, f := range []string{"counter", "net/packets", "net/eth1/mtu", "limit"} {
					b, err := os.ReadFile(filepath.Join(dir, f))
					if err != nil {
						report(err)
						return
					}
					if !strings.HasSuffix(string(b), "\n") {
						report(fmt.Errorf("%s read %q", f, b))
					}
				}
				if _, err := os.ReadDir(filepath.Join(dir, "net")); err != nil {
					report(err)
				}
			}
		})
	}
	for range writers {
		work.Go(func() {
			for range rounds {
				if err := os.WriteFile(filepath.Join(dir, "counter"), []byte("0"), 0); err != nil {
					report(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "net/eth1/packets"), []byte("1"), 0); !errors.Is(err, syscall.EINVAL) {
					report(fmt.Errorf("writing 1: %v, want EINVAL", err))
				}
				if err := os.WriteFile(filepath.Join(dir, "limit"), []byte("7"), 0); err != nil {
					report(err)
				}
			}
		})
	}
	work.Wait()
	close(stop)
	bg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestStaleMount leaves a dead FUSE mount at the mount point, as a daemon
// killed with SIGKILL does, and mounts there again.
func TestStaleMount(t *testing.T) {
	host.RequireFUSE(t)
	dir := filepath.Join(t.TempDir(), "mnt")
	must(t, os.Mkdir(dir, 0o755))
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR, 0)
	must(t, err)
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd)
	must(t, unix.Mount(fusefs.FsName, dir, "fuse."+fusefs.Type, unix.MS_NOSUID|unix.MS_NODEV, opts))
	unix.Close(fd) // the "daemon" dies
	if _, err := os.Stat(dir); !errors.Is(err, syscall.ENOTCONN) {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		t.Fatalf("dead mount: stat gives %v, want ENOTCONN", err)
	}
	tr := newTree(t)
	logs := &logBuffer{}
	srv, err := fusefs.Mount(dir, tr.root, fusefs.Options{Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "counter")); got != "42\n" {
		t.Errorf("counter = %q on the recovered mount", got)
	}
	if !strings.Contains(logs.String(), "stale") {
		t.Errorf("recovery not logged: %s", logs.String())
	}
	// A second mount on a live one is refused.
	if _, err := fusefs.Mount(dir, tr.root, fusefs.Options{}); err == nil || !strings.Contains(err.Error(), "already mounted") {
		t.Errorf("mounting over a live mount: %v", err)
	}
	must(t, srv.Unmount())
	if _, ok := fusefs.MountedAt(dir); ok {
		t.Error("still mounted after Unmount")
	}
}

func TestRequestCounters(t *testing.T) {
	tr := newTree(t)
	srv, dir := mount(t, tr.root, nil)
	req := srv.Requests()
	before := req.Reads.Load()
	for range 5 {
		read(t, filepath.Join(dir, "counter"))
	}
	if got := req.Reads.Load() - before; got < 5 {
		t.Errorf("5 reads counted as %d", got)
	}
	_ = os.WriteFile(filepath.Join(dir, "counter"), []byte("x"), 0)
	if req.Writes.Load() == 0 || req.Refused.Load() == 0 || req.Lookups.Load() == 0 || req.Opens.Load() < 6 {
		t.Errorf("counters: writes %d refused %d lookups %d opens %d", req.Writes.Load(), req.Refused.Load(), req.Lookups.Load(), req.Opens.Load())
	}
}

func BenchmarkFUSERead(b *testing.B) {
	root := statsfs.NewSource("kstat")
	c := statsfs.NewCounters(topTable)
	must(b, root.AddValues(topTable, c, 0))
	_, dir := mount(b, root, nil)
	path := filepath.Join(dir, "counter")
	buf := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		readInto(b, path, buf)
	}
}

func BenchmarkProcMeminfo(b *testing.B) {
	buf := make([]byte, 8192)
	b.ReportAllocs()
	for b.Loop() {
		readInto(b, "/proc/meminfo", buf)
	}
}

// readInto opens, reads and closes path, as a monitoring tool does.
func readInto(b *testing.B, path string, buf []byte) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.Read(buf); err != nil {
		b.Fatal(err)
	}
	f.Close()
}

// TestAbsentValue: a value its record lacks opens and stats as usual, but
// read(2) fails with ENODATA, for the value itself and for the aggregate
// over it (never a "0"); the other values read on, and the file reads its
// number again once the record has it.
func TestAbsentValue(t *testing.T) {
	tr, dir := mountTree(t)
	tr.top.SetAbsent(0)
	tr.eth1.SetAbsent(0)
	for _, file := range []string{"counter", "net/eth1/packets", "net/packets"} {
		path := filepath.Join(dir, file)
		if _, err := os.Stat(path); err != nil {
			t.Errorf("stat %s: %v", file, err)
		}
		b, err := os.ReadFile(path)
		if !errors.Is(err, syscall.ENODATA) {
			t.Errorf("read %s = %q, %v; want ENODATA", file, b, err)
		}
	}
	for file, want := range map[string]string{"gauge": "-5\n", "net/eth0/packets": "10\n", "net/mtu": "65536\n"} {
		if got := read(t, filepath.Join(dir, file)); got != want {
			t.Errorf("%s = %q beside absent values, want %q", file, got, want)
		}
	}
	tr.eth1.Store(0, 25)
	if got := read(t, filepath.Join(dir, "net/packets")); got != "335\n" {
		t.Errorf("net/packets after the value came back = %q, want 335", got)
	}
}
