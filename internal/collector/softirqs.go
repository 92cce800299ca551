package collector

import (
	"fmt"
	"path/filepath"

	"github.com/kstat/kstat/statsfs"
)

func init() {
	Register(Info{Name: "softirqs", Default: true,
		Help: "softirqs per vector from /proc/softirqs into softirq/"},
		func(cfg Config) (Collector, error) { return newSoftirqs(cfg.Paths, Child(cfg.Root, "softirq")) })
}

// ParseSoftirqs reads the text of /proc/softirqs: a header of CPU columns,
// then one line per softirq vector (HI, TIMER, NET_TX, ...), in vector
// order.
func ParseSoftirqs(b []byte) (CPUTable, error) {
	t, err := parseCPUTable(b)
	if err != nil {
		return CPUTable{}, fmt.Errorf("softirqs: %w", err)
	}
	for _, l := range t.Lines {
		if l.Desc != "" {
			return CPUTable{}, fmt.Errorf("%w: softirqs: %s: %q after the counts", ErrMalformed, l.Name, l.Desc)
		}
	}
	return t, nil
}

// newSoftirqs adds the "softirqs" collector under parent (normally
// softirq/): a source softirq/<vector>/ per line of p.Proc/softirqs,
// labelled vector=<name>, with its count, and a count sum in parent.
func newSoftirqs(p Paths, parent *statsfs.Source) (*Lines, error) {
	return newLines("softirqs", filepath.Join(p.Proc, "softirqs"), "vector", softirqTable, false, ParseSoftirqs, parent)
}
