package export

import (
	"cmp"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/kstat/kstat/statsfs"
)

// scrape reads the tree and returns the series to export, with their
// label pairs and family descriptors ready: the pids within budget, each
// name and label set once. It also counts the counters among them, the
// pids over budget and the duplicates dropped. The slice is valid until
// the next scrape; c.mu must be held.
func (c *Collector) scrape() (kept []series, counters, pidsDropped, duplicates int) {
	if c.opts.Collectors != nil {
		// One read per collector, all at once, none waited for past its
		// timeout; the walk below then reads fresh values.
		c.opts.Collectors.RefreshAll()
	}
	c.gen++
	c.series = c.series[:0]
	c.activity = c.activity[:0]
	clear(c.pidIndex)
	clear(c.seen)
	c.conflicts = 0
	live := 0
	c.root.Walk(func(path string, labels []statsfs.Label, src *statsfs.Source) bool {
		live++
		c.read(path, labels, src)
		return true
	})
	pidsDropped = c.budget()
	kept = c.series[:0]
	for _, s := range c.series {
		if s.entry.hasPid && !c.activity[c.pidIndex[s.entry.pid]].keep {
			continue
		}
		if !c.prepare(s) {
			duplicates++
			continue
		}
		kept = append(kept, s)
		if s.ve.fam.counter {
			counters++
		}
	}
	c.sweep(live)
	return kept, counters, pidsDropped, duplicates
}

// read records the visible values of one source in c.series.
func (c *Collector) read(path string, labels []statsfs.Label, src *statsfs.Source) {
	// The walk is depth first: the parent is the newest source on the
	// chain with the path this one extends by its name ("" for the
	// root's children). Names may hold slashes, so the path is not split.
	parent := c.opts.Namespace
	if src == c.root {
		c.ancestors = c.ancestors[:0]
	} else {
		pp := ""
		if path != src.Name() {
			pp = path[:len(path)-len(src.Name())-1]
		}
		for len(c.ancestors) > 1 && c.ancestors[len(c.ancestors)-1].path != pp {
			c.ancestors = c.ancestors[:len(c.ancestors)-1]
		}
		parent = c.ancestors[len(c.ancestors)-1].prefix
	}
	e := c.sources[src]
	if e == nil || e.path != path {
		e = c.newEntry(path, labels, src, parent)
		c.sources[src] = e
	}
	e.gen = c.gen
	c.ancestors = append(c.ancestors, frame{path, e.prefix})

	refs := src.Values()
	if !e.matches(refs) {
		// A new slice: series of this scrape may point into the old one.
		e.values = make([]valueEntry, 0, len(refs))
		for _, r := range refs {
			e.values = append(e.values, c.newValue(e, r.Value(), r.Aggregate()))
		}
	}
	pid := -1
	if e.hasPid {
		i, ok := c.pidIndex[e.pid]
		if !ok {
			i = len(c.activity)
			c.activity = append(c.activity, pidScore{pid: e.pid})
			c.pidIndex[e.pid] = i
		}
		pid = i
	}
	for i, r := range refs {
		ve := &e.values[i]
		ve.fam.used = c.gen
		if r.Hidden() {
			continue
		}
		if ve.conflict {
			c.conflicts++
			continue
		}
		rd := r.Read()
		if rd.Absent {
			continue // a value the kernel lacks has no series
		}
		if ve.fam.gen != c.gen {
			// First time this family is seen in this scrape: its
			// label set starts from this source's.
			ve.fam.gen = c.gen
			ve.fam.labels = append(ve.fam.labels[:0], e.labelNames...)
		} else {
			ve.fam.labels = union(ve.fam.labels, e.labelNames)
		}
		val := rd.Float64()
		if pid >= 0 && ve.fam.counter && !ve.aggregate {
			c.activity[pid].activity += val
		}
		c.series = append(c.series, series{entry: e, ve: ve, value: val})
	}
}

// matches reports whether the cached values are refs, in order.
func (e *sourceEntry) matches(refs []statsfs.ValueRef) bool {
	if len(refs) != len(e.values) {
		return false
	}
	for i, r := range refs {
		if e.values[i].v != r.Value() || e.values[i].aggregate != r.Aggregate() {
			return false
		}
	}
	return true
}

// newEntry builds the cache entry of a source: its name prefix extends its
// parent's unless it is an instance, whose name becomes a label instead.
// The root's prefix is the namespace.
func (c *Collector) newEntry(path string, labels []statsfs.Label, src *statsfs.Source, parent string) *sourceEntry {
	e := &sourceEntry{path: path, prefix: parent}
	if src != c.root && src.Label() == "" {
		e.prefix = appendName(parent, src.Name())
	}
	for _, l := range labels {
		name := labelName(l.Name)
		// A nested instance with the same key gets a numbered name, so
		// no series has two labels of one name.
		for n, base := 2, name; slices.Contains(e.labelNames, name); n++ {
			name = base + "_" + strconv.Itoa(n)
		}
		e.labelNames = append(e.labelNames, name)
		e.labelValues = append(e.labelValues, strings.ToValidUTF8(l.Value, "\uFFFD"))
		if l.Name == c.opts.PidLabel && !e.hasPid {
			e.pid, e.hasPid = l.Value, true
		}
	}
	return e
}

// newValue resolves the family of value v in entry e, creating it at first
// sight; a family keeps the help and metric type it was created with.
func (c *Collector) newValue(e *sourceEntry, v *statsfs.Value, aggregate bool) valueEntry {
	counter := isCounter(v, aggregate)
	name := metricName(e.prefix, v, aggregate, counter)
	f := c.families[name]
	if f == nil {
		f = &family{name: name, help: help(name, v, aggregate), counter: counter}
		c.families[name] = f
	}
	conflict := f.counter != counter || c.reserved[name]
	return valueEntry{v: v, aggregate: aggregate, fam: f, conflict: conflict}
}

// budget marks which pids keep their series: all of them when they are no
// more than MaxPids, otherwise the MaxPids most active (by the sum of their
// cumulative values; ties by pid). It returns how many were dropped.
func (c *Collector) budget() int {
	max := c.opts.MaxPids
	if max < 0 || len(c.activity) <= max {
		for i := range c.activity {
			c.activity[i].keep = true
		}
		return 0
	}
	order := make([]int, len(c.activity))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		x, y := c.activity[a], c.activity[b]
		if r := cmp.Compare(y.activity, x.activity); r != 0 {
			return r
		}
		return comparePids(x.pid, y.pid)
	})
	for _, i := range order[:max] {
		c.activity[i].keep = true
	}
	return len(c.activity) - max
}

// comparePids orders pids numerically when they are numbers of one length
// and lexically otherwise.
func comparePids(a, b string) int {
	if len(a) != len(b) {
		return cmp.Compare(len(a), len(b))
	}
	return strings.Compare(a, b)
}

// prepare readies the label pairs of series s and its family's
// descriptor, or reports false when s repeats an earlier series' name and
// labels.
func (c *Collector) prepare(s series) bool {
	ve, f := s.ve, s.ve.fam
	if !ve.built || !slices.Equal(ve.pairsFor, f.labels) {
		c.label(s.entry, ve)
	}
	if _, dup := c.seen[ve.hash]; dup {
		return false
	}
	c.seen[ve.hash] = struct{}{}
	if f.desc == nil || !slices.Equal(f.descFor, f.labels) {
		f.descFor = append(f.descFor[:0], f.labels...)
		f.desc = prometheus.NewDesc(f.name, f.help, slices.Clone(f.labels), nil)
	}
	return true
}

// label builds the label pairs and the identity hash of a value of entry
// e for its family's current label set: e's own labels, and an empty
// value for every family label e does not have.
func (c *Collector) label(e *sourceEntry, ve *valueEntry) {
	f := ve.fam
	ve.built = true
	ve.pairsFor = append(ve.pairsFor[:0], f.labels...)
	ve.pairs = make([]*dto.LabelPair, 0, len(f.labels))
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(f.name)
	for _, name := range f.labels {
		v := ""
		if i := slices.Index(e.labelNames, name); i >= 0 {
			v = e.labelValues[i]
		}
		h.WriteByte(0xff)
		h.WriteString(name)
		h.WriteByte(0xfe)
		h.WriteString(v)
		ve.pairs = append(ve.pairs, &dto.LabelPair{Name: proto.String(name), Value: proto.String(v)})
	}
	slices.SortFunc(ve.pairs, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
	ve.hash = h.Sum64()
}

// sweep forgets the sources and families the last scrapes did not see,
// once they outnumber the live ones by a quarter.
func (c *Collector) sweep(live int) {
	if len(c.sources) <= live+live/4+16 {
		return
	}
	for src, e := range c.sources {
		if e.gen != c.gen {
			delete(c.sources, src)
		}
	}
	for name, f := range c.families {
		if f.used != c.gen {
			delete(c.families, name)
		}
	}
}

// union adds the names of add missing from have, keeping have's order.
func union(have, add []string) []string {
	for _, n := range add {
		if !slices.Contains(have, n) {
			have = append(have, n)
		}
	}
	return have
}
