package history

import (
	"cmp"
	"slices"
	"strings"
)

// chartDef is a chart: fixed series, or the busiest of the keys a match
// function accepts.
type chartDef struct {
	id, title, unit string
	fixed           []Series          // shown when any sample has them
	match           func(string) bool // for charts of many series
}

var chartDefs = []chartDef{
	{id: "memory", title: "Memory", unit: "bytes", fixed: []Series{
		{"mem/used", "used (total − available)"}, {"mem/cached", "cached"}, {"mem/buffers", "buffers"},
		{"mem/slab", "slab"}, {"mem/dirty", "dirty"},
	}},
	{id: "activity", title: "Context switches and interrupts", unit: "/s", fixed: []Series{
		{"sys/context_switches", "context switches"}, {"sys/interrupts", "interrupts"},
		{"sys/softirqs", "softirqs"}, {"sys/forks", "forks"},
	}},
	{id: "net-rx", title: "Network received, by device", unit: "bytes/s", match: netMatch("rx_bytes")},
	{id: "net-tx", title: "Network sent, by device", unit: "bytes/s", match: netMatch("tx_bytes")},
	{id: "kstat", title: "KSTAT outgoing packets", unit: "/s", match: func(k string) bool { return strings.HasPrefix(k, "kstat/") }},
	{id: "irq", title: "Interrupts, by line", unit: "/s", match: func(k string) bool { return strings.HasPrefix(k, "irq/") }},
	{id: "softirq", title: "Softirqs, by vector", unit: "/s", match: func(k string) bool { return strings.HasPrefix(k, "softirq/") }},
	{id: "tracer", title: "Kernel memory allocated, top processes (tracer)", unit: "bytes/s", match: func(k string) bool {
		rest, ok := strings.CutPrefix(k, "tracer/")
		return ok && !strings.Contains(rest, "/")
	}},
}

func netMatch(field string) func(string) bool {
	return func(k string) bool {
		rest, ok := strings.CutPrefix(k, "net/")
		return ok && strings.HasSuffix(rest, "/"+field)
	}
}

// totals are the window's sums per key, kept as samples come and go so
// that choosing the charts' series does not add up the window each time.
type totals struct {
	sum      map[string]float64 // for the order of the busiest
	n        map[string]int     // samples with the key
	positive map[string]int     // samples where it is above 0
}

// add adds a sample's values (sign 1) or takes them away (sign -1).
func (w *totals) add(s Sample, sign int) {
	for k, v := range s.Values {
		w.n[k] += sign
		if v > 0 {
			w.positive[k] += sign
		}
		w.sum[k] += float64(sign) * v
		if w.n[k] == 0 {
			delete(w.n, k)
			delete(w.positive, k)
			delete(w.sum, k)
		}
	}
}

// charts chooses every chart's series from the window: the fixed series
// any sample has, or the opts.Top keys with the largest sum over the
// window, leaving out those at 0 all along. Callers hold r.mu.
func (r *Recorder) charts() []Chart {
	w := &r.window
	for k := range r.labels {
		if _, ok := w.n[k]; !ok {
			delete(r.labels, k) // a device, line or process gone from the window
		}
	}
	out := make([]Chart, 0, len(chartDefs))
	for _, d := range chartDefs {
		c := Chart{ID: d.id, Title: d.title, Unit: d.unit, Series: []Series{}}
		if d.fixed != nil {
			for _, s := range d.fixed {
				if _, ok := w.n[s.Key]; ok {
					c.Series = append(c.Series, s)
				}
			}
		} else {
			var keys []string
			for k, n := range w.positive {
				if n > 0 && d.match(k) {
					keys = append(keys, k)
				}
			}
			slices.SortFunc(keys, func(a, b string) int {
				if c := cmp.Compare(w.sum[b], w.sum[a]); c != 0 {
					return c
				}
				return strings.Compare(a, b)
			})
			for _, k := range keys[:min(len(keys), r.opts.Top)] {
				label := r.labels[k]
				if label == "" {
					label = k
				}
				c.Series = append(c.Series, Series{Key: k, Label: label})
			}
		}
		out = append(out, c)
	}
	return out
}
