package tracer

import (
	"errors"
	"slices"
	"testing"

	"github.com/kstat/kstat/statsfs"
)

// FuzzKnobText writes arbitrary text to the tracer's text knobs (pids,
// sort, sample_every, stack_every) with the tracer off: each write either
// applies (the pids filter holds valid, distinct pids within MaxPids; the
// sort column is a known one) or is refused with ErrInvalid and changes
// nothing.
func FuzzKnobText(f *testing.F) {
	for _, s := range []string{"+12", "+13 +14", "-14", "clear", "+0", "+4194305", "12", "+1,+2,-1", "kmalloc", "", "+", "+-1", "1"} {
		f.Add(s)
	}
	src := statsfs.NewSource("tracer")
	s, err := NewService(src, Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, text string) {
		for _, k := range s.Knobs() {
			if k.Name == "enable" {
				continue // attaching is not text handling
			}
			before, beforePids := k.Get(), s.Pids()
			err := k.Set(text)
			if err != nil {
				if !errors.Is(err, statsfs.ErrInvalid) || k.Get() != before || !slices.Equal(s.Pids(), beforePids) {
					t.Fatalf("%s.Set(%q) = %v, and %q became %q", k.Name, text, err, before, k.Get())
				}
				continue
			}
			pids := s.Pids()
			if len(pids) > MaxPids || !slices.IsSorted(pids) || slices.Contains(pids, 0) || len(slices.Compact(slices.Clone(pids))) != len(pids) {
				t.Fatalf("%s.Set(%q) left pids %v", k.Name, text, pids)
			}
			for _, p := range pids {
				if p > 1<<22 {
					t.Fatalf("%s.Set(%q) let pid %d in", k.Name, text, p)
				}
			}
			if !ValidSort(s.SortBy()) {
				t.Fatalf("%s.Set(%q) set sort %q", k.Name, text, s.SortBy())
			}
		}
	})
}
