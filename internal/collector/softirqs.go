package collector

import (
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
// order. Lines are skipped or kept as Bad as tableParser.parse says; a
// line with text after its counts is kept as Bad too.
func ParseSoftirqs(b []byte) (CPUTable, error) {
	var p tableParser
	err := p.parseSoftirqs(b)
	return p.table(), err
}

// parseSoftirqs is ParseSoftirqs into p.
func (p *tableParser) parseSoftirqs(b []byte) error {
	err := p.parse(b)
	sk, _ := err.(*Skipped) // parse's errors are a *Skipped or fatal
	if err != nil && sk == nil {
		return fmt.Errorf("softirqs: %w", err)
	}
	for i := range p.lines {
		l := &p.lines[i]
		if len(trimSpaces(l.rest)) > 0 {
			skip(&sk, fmt.Errorf("%w: softirqs: %s: %q after the counts", ErrMalformed, l.name, appendDesc(nil, l.rest)))
			*l = rawLine{name: l.name, first: l.first, bad: true}
		}
	}
	if sk != nil {
		return fmt.Errorf("softirqs: %w", sk)
	}
	return nil
}

// newSoftirqs adds the "softirqs" collector under parent (normally
// softirq/): a source softirq/<vector>/ per line of p.Proc/softirqs,
// labelled vector=<name>, with its count, and a count sum in parent.
func newSoftirqs(p Paths, parent *statsfs.Source) (*Lines, error) {
	return newLines(NameSoftirqs, filepath.Join(p.Proc, "softirqs"), "vector", softirqTable, false, (*tableParser).parseSoftirqs, parent)
}
