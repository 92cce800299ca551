package knob

import (
	"errors"
	"testing"
	"time"

	"github.com/kstat/kstat/statsfs"
)

func TestUintRejectsAndKeeps(t *testing.T) {
	v := uint64(10)
	k := Uint("counter", "publish every N packets", 1, 1<<32, func() uint64 { return v },
		func(n uint64) error { v = n; return nil })
	for _, bad := range []string{"0", "-1", "abc", "", "4294967297", "1.5", "0x10", "99999999999999999999"} {
		if err := k.Set(bad); !errors.Is(err, statsfs.ErrInvalid) {
			t.Errorf("Set(%q) = %v, want ErrInvalid", bad, err)
		}
		if v != 10 {
			t.Fatalf("Set(%q) changed the value to %d", bad, v)
		}
	}
	for _, c := range []struct {
		in   string
		want uint64
	}{{"1", 1}, {" 25\n", 25}, {"4294967296", 1 << 32}} {
		if err := k.Set(c.in); err != nil || v != c.want {
			t.Errorf("Set(%q) = %v, value %d; want %d", c.in, err, v, c.want)
		}
	}
	if got := k.Get(); got != "4294967296" {
		t.Errorf("Get = %q", got)
	}
}

func TestBool(t *testing.T) {
	on := false
	k := Bool("start", "count packets", func() bool { return on }, func(b bool) error { on = b; return nil })
	if err := k.Set("1\n"); err != nil || !on || k.Get() != "1" {
		t.Fatalf("Set(1): %v, on=%v, Get=%q", err, on, k.Get())
	}
	for _, bad := range []string{"2", "true", "yes", "-1", ""} {
		if err := k.Set(bad); !errors.Is(err, statsfs.ErrInvalid) || !on {
			t.Errorf("Set(%q) = %v, on=%v", bad, err, on)
		}
	}
	if err := k.Set("0"); err != nil || on || k.Get() != "0" {
		t.Errorf("Set(0): %v, on=%v", err, on)
	}
}

func TestDuration(t *testing.T) {
	d := time.Second
	k := Duration("log_interval", "sampling period", 100*time.Millisecond, 24*time.Hour,
		func() time.Duration { return d }, func(x time.Duration) error { d = x; return nil })
	for _, c := range []struct {
		in   string
		want time.Duration
	}{{"5", 5 * time.Second}, {"250ms", 250 * time.Millisecond}, {"24h", 24 * time.Hour}, {"100ms", 100 * time.Millisecond}} {
		if err := k.Set(c.in); err != nil || d != c.want {
			t.Errorf("Set(%q) = %v, d=%v; want %v", c.in, err, d, c.want)
		}
	}
	for _, bad := range []string{"0", "99ms", "25h", "-1s", "soon", ""} {
		if err := k.Set(bad); !errors.Is(err, statsfs.ErrInvalid) || d != 100*time.Millisecond {
			t.Errorf("Set(%q) = %v, d=%v", bad, err, d)
		}
	}
	if k.Get() != "100ms" {
		t.Errorf("Get = %q", k.Get())
	}
}

func TestSetterErrorPassesThrough(t *testing.T) {
	busy := errors.New("device busy")
	k := Bool("enable", "", func() bool { return false }, func(bool) error { return busy })
	if err := k.Set("1"); !errors.Is(err, busy) {
		t.Errorf("Set = %v, want the setter's error", err)
	}
}

func TestRegistryAndControl(t *testing.T) {
	var r Registry
	src := statsfs.NewSource("kstat")
	n := uint64(3)
	k := Uint("counter", "h", 1, 10, func() uint64 { return n }, func(v uint64) error { n = v; return nil })
	if err := r.Add("kstat/counter", src, k); err != nil {
		t.Fatal(err)
	}
	if err := r.Add("kstat/counter", src, k); !errors.Is(err, statsfs.ErrExist) {
		t.Errorf("second Add = %v, want ErrExist", err)
	}
	if r.Lookup("kstat/counter") != k || r.Lookup("nope") != nil {
		t.Error("Lookup")
	}
	if p := r.Paths(); len(p) != 1 || p[0] != "kstat/counter" {
		t.Errorf("Paths = %v", p)
	}
	c := src.Control("counter")
	if c == nil || c.Mode() != 0o644 {
		t.Fatalf("control file missing or mode wrong: %+v", c)
	}
	if err := c.Write("7"); err != nil || c.Read() != "7\n" {
		t.Errorf("control write: %v, read %q", err, c.Read())
	}
	if err := c.Write("11"); !errors.Is(err, statsfs.ErrInvalid) || n != 7 {
		t.Errorf("control bad write: %v, n=%d", err, n)
	}
}
