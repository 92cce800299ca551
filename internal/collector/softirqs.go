package collector

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/kstat/kstat/statsfs"
)

func init() {
	Register(Info{Name: NameSoftirqs, Default: true,
		Help: "softirqs per vector from /proc/softirqs into softirq/"},
		func(cfg Config) (Collector, error) { return newSoftirqs(cfg.Paths, Child(cfg.Root, DirSoftirq)) })
}

// ParseSoftirqs reads the text of /proc/softirqs: a header of CPU columns,
// then one line per softirq vector (HI, TIMER, NET_TX, ...), in vector
// order. Lines are skipped or kept as Bad as parseCPUTable says; a line
// with text after its counts is kept as Bad too.
func ParseSoftirqs(b []byte) (CPUTable, error) {
	t, err := parseCPUTable(b)
	var sk *Skipped
	if err != nil && !errors.As(err, &sk) {
		return CPUTable{}, fmt.Errorf("softirqs: %w", err)
	}
	for i := range t.Lines {
		l := &t.Lines[i]
		if l.Desc != "" {
			skip(&sk, fmt.Errorf("%w: softirqs: %s: %q after the counts", ErrMalformed, l.Name, l.Desc))
			*l = Line{Name: l.Name, Bad: true}
		}
	}
	if sk != nil {
		return t, fmt.Errorf("softirqs: %w", sk)
	}
	return t, nil
}

// newSoftirqs adds the "softirqs" collector under parent (normally
// softirq/): a source softirq/<vector>/ per line of p.Proc/softirqs,
// labelled vector=<name>, with its count, and a count sum in parent.
func newSoftirqs(p Paths, parent *statsfs.Source) (*Lines, error) {
	return newLines(NameSoftirqs, filepath.Join(p.Proc, "softirqs"), "vector", softirqTable, false, ParseSoftirqs, parent)
}
