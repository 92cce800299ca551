package knob

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kstat/kstat/statsfs"
)

// FuzzKnobValues sets a Bool, a Uint and a Duration knob to arbitrary
// text: each either takes a value it shows back through Get, inside its
// range, or refuses with ErrInvalid and keeps the old setting; the setter
// never sees a value the knob refused.
func FuzzKnobValues(f *testing.F) {
	for _, s := range []string{"0", "1", " 1\n", "2", "-1", "", "250ms", "5", "24h", "24h0m0.000000001s", "99999999999999999999", "1e3", "0x10", "\x00", "1s\n2s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		on := false
		b := Bool("b", "", func() bool { return on }, func(v bool) error { on = v; return nil })
		if err := b.Set(text); err != nil {
			if !errors.Is(err, statsfs.ErrInvalid) || on {
				t.Fatalf("Bool.Set(%q) = %v, on %v", text, err, on)
			}
		} else if b.Get() != strings.TrimSpace(text) {
			t.Fatalf("Bool.Set(%q) accepted, Get %q", text, b.Get())
		}

		n := uint64(7)
		u := Uint("u", "", 1, 1000, func() uint64 { return n }, func(v uint64) error {
			if v < 1 || v > 1000 {
				t.Fatalf("Uint set to %d outside [1, 1000]", v)
			}
			n = v
			return nil
		})
		if err := u.Set(text); err != nil {
			if !errors.Is(err, statsfs.ErrInvalid) || n != 7 {
				t.Fatalf("Uint.Set(%q) = %v, value %d", text, err, n)
			}
		} else if want, perr := strconv.ParseUint(strings.TrimSpace(text), 10, 64); perr != nil || u.Get() != strconv.FormatUint(want, 10) {
			t.Fatalf("Uint.Set(%q) accepted, Get %q", text, u.Get())
		}

		d := time.Second
		lo, hi := 100*time.Millisecond, 24*time.Hour
		k := Duration("d", "", lo, hi, func() time.Duration { return d }, func(v time.Duration) error {
			if v < lo || v > hi {
				t.Fatalf("Duration set to %v outside [%v, %v]", v, lo, hi)
			}
			d = v
			return nil
		})
		if err := k.Set(text); err != nil {
			if !errors.Is(err, statsfs.ErrInvalid) || d != time.Second {
				t.Fatalf("Duration.Set(%q) = %v, value %v", text, err, d)
			}
		} else if back, err := ParseDuration(k.Get()); err != nil || back != d {
			t.Fatalf("Duration.Set(%q) accepted %v, whose Get %q does not read back (%v)", text, d, k.Get(), err)
		}
	})
}
