package export

import (
	"cmp"
	"hash/maphash"
	"math"
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
		switch c.prepare(s) {
		case duplicate:
			duplicates++
			continue
		case partial:
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

	c.refs = src.AppendValues(c.refs[:0])
	refs := c.refs
	if !e.matches(refs) {
		// A new slice: series of this scrape may point into the old one.
		e.values = make([]valueEntry, 0, len(refs))
		e.info, e.infoNames, e.infoValues, e.infoBuilt = nil, nil, nil, nil
		for _, r := range refs {
			ve := c.newValue(e, r.Value(), r.Aggregate())
			if r.Value().Info {
				c.addInfo(e, &ve, r.Value())
			}
			e.values = append(e.values, ve)
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
	c.seriesLabels(e, src)
	hasInfo, pidsBelow, pidsKnown := false, false, false
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
		if ve.aggregate {
			if ve.v.Aggr == statsfs.None {
				continue
			}
			// PromQL sums, averages and takes extremes of the instance
			// series itself; only aggregates over pids, some of which
			// the budget leaves out, say something it cannot compute.
			if !pidsKnown {
				pidsBelow, pidsKnown = c.hasPidChildren(src), true
			}
			if !pidsBelow {
				continue
			}
		}
		rd := r.Read()
		if rd.Absent {
			continue // a value the kernel lacks has no series
		}
		if ve.v.Info {
			e.infoValues[ve.infoIndex] = labelValue(strings.TrimSpace(ve.v.Text(rd)))
			hasInfo = true
			continue
		}
		val := rd.Float64()
		if math.IsInf(val, 0) || math.IsNaN(val) {
			continue // no observation yet (a maximum over nothing)
		}
		c.addLabels(ve.fam, e.labelNames)
		if len(e.labelNames) > 0 && !ve.fam.helpOfInstance {
			ve.fam.help = help(ve.fam.name, ve.v, ve.aggregate, labelName(c.opts.PidLabel))
			ve.fam.helpOfInstance, ve.fam.desc = true, nil
		}
		if pid >= 0 && ve.fam.counter && !ve.aggregate {
			c.activity[pid].activity += val
		}
		c.series = append(c.series, series{entry: e, ve: ve, value: val})
	}
	if hasInfo {
		if !slices.Equal(e.infoValues, e.infoBuilt) {
			e.infoBuilt = append(e.infoBuilt[:0], e.infoValues...)
			e.info.built = false
		}
		e.info.fam.used = c.gen
		c.addLabels(e.info.fam, e.infoNames)
		c.series = append(c.series, series{entry: e, ve: e.info, value: 1, info: true})
	}
}

// addLabels adds names to the label set family f has this scrape.
func (c *Collector) addLabels(f *family, names []string) {
	if f.gen != c.gen {
		// First time this family is seen in this scrape: its label set
		// starts from this source's.
		f.gen = c.gen
		f.labels = append(f.labels[:0], names...)
	} else {
		f.labels = union(f.labels, names)
	}
}

// hasPidChildren reports whether src has an instance child of the budget
// label.
func (c *Collector) hasPidChildren(src *statsfs.Source) bool {
	for _, sub := range src.Subordinates() {
		if sub.Label() == c.opts.PidLabel {
			return true
		}
	}
	return false
}

// seriesLabels updates the values of e's series labels (the text of the
// controls named in Options.SeriesLabels, such as a process's comm); a
// change rebuilds the label pairs of e's series.
func (c *Collector) seriesLabels(e *sourceEntry, src *statsfs.Source) {
	for i, name := range e.controlLabels {
		ctl := src.Control(name)
		if ctl == nil {
			continue
		}
		v := boundLabel(strings.TrimSpace(ctl.Read()))
		j := len(e.labelNames) - len(e.controlLabels) + i
		if e.labelValues[j] == v {
			continue
		}
		e.labelValues[j] = v
		for k := range e.values {
			e.values[k].built = false
		}
		if e.info != nil {
			e.infoValues[j] = v
		}
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
		name := src.Name()
		if r, ok := componentNames[name]; ok && parent == c.opts.Namespace {
			name = r
		}
		e.prefix = appendName(parent, name)
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
	if src.Label() != "" {
		for _, name := range c.opts.SeriesLabels {
			if src.Control(name) != nil && !slices.Contains(e.labelNames, labelName(name)) {
				e.controlLabels = append(e.controlLabels, name)
				e.labelNames = append(e.labelNames, labelName(name))
				e.labelValues = append(e.labelValues, "")
			}
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
		f = &family{name: name, help: help(name, v, aggregate, labelName(c.opts.PidLabel)), counter: counter}
		c.families[name] = f
	}
	conflict := f.counter != counter || c.reserved[name]
	return valueEntry{v: v, aggregate: aggregate, fam: f, conflict: conflict}
}

// addInfo adds Info value v of entry e to e's info series, making the
// series (and its family, prefix_info) at the first one.
func (c *Collector) addInfo(e *sourceEntry, ve *valueEntry, v *statsfs.Value) {
	if e.info == nil {
		name := e.prefix + "_info"
		f := c.families[name]
		if f == nil {
			h := strings.TrimSuffix(tidyHelp(v.Help), ".")
			f = &family{name: name, help: "Properties as labels (" + labelName(v.Name) + ": " + h + "); the value is always 1."}
			c.families[name] = f
		}
		e.info = &valueEntry{v: v, fam: f, conflict: f.counter || c.reserved[name]}
		e.infoNames = slices.Clone(e.labelNames)
		e.infoValues = slices.Clone(e.labelValues)
	}
	ve.infoIndex = len(e.infoNames)
	e.infoNames = append(e.infoNames, labelName(v.Name))
	e.infoValues = append(e.infoValues, "")
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
	order := c.order[:0]
	for i := range c.activity {
		order = append(order, i)
	}
	c.order = order
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

// The outcomes of prepare.
const (
	ready     = iota
	duplicate // the same name and labels as an earlier series
	partial   // without an instance label its family has: a total
)

// prepare readies the label pairs of series s and its family's
// descriptor. A series that repeats an earlier one's name and labels is a
// duplicate; one that lacks a label others of its family have (a total
// beside its instances) is partial: sum() computes it, and leaving it out
// keeps sum() from counting everything twice.
func (c *Collector) prepare(s series) int {
	ve, f := s.ve, s.ve.fam
	names, values := s.entry.labelNames, s.entry.labelValues
	if s.info {
		names, values = s.entry.infoNames, s.entry.infoValues
	}
	if !s.info && len(names) == 0 && len(f.labels) > 0 {
		return partial
	}
	if !ve.built || !slices.Equal(ve.pairsFor, f.labels) {
		c.label(names, values, ve)
	}
	if _, dup := c.seen[ve.hash]; dup {
		return duplicate
	}
	c.seen[ve.hash] = struct{}{}
	if f.desc == nil || !slices.Equal(f.descFor, f.labels) {
		f.descFor = append(f.descFor[:0], f.labels...)
		f.desc = prometheus.NewDesc(f.name, f.help, slices.Clone(f.labels), nil)
	}
	return ready
}

// label builds the label pairs and the identity hash of a series with the
// given labels for its family's current label set.
func (c *Collector) label(names, values []string, ve *valueEntry) {
	f := ve.fam
	ve.built = true
	ve.pairsFor = append(ve.pairsFor[:0], f.labels...)
	ve.pairs = make([]*dto.LabelPair, 0, len(f.labels))
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(f.name)
	for _, name := range f.labels {
		v := ""
		if i := slices.Index(names, name); i >= 0 {
			v = values[i]
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
