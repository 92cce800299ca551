package statsfs

// Pass is the visible values of one or more subtrees read in one walk:
// every value is read once and every aggregate is computed from its
// children's readings in the same walk, bottom-up, so a pass over n
// sources costs O(n) however deep the aggregates nest, where reading each
// aggregate on its own walks its subtree again. The readings are the same
// as each value's own Read: absent values stay absent, an aggregate over
// an absent value is absent, hidden sources and their subtrees are left
// out of the pass yet counted in their parents' aggregates, and revoked
// values read 0.
//
// A Pass is reused from one reading to the next without garbage once its
// buffers have grown to the tree's size. It is not safe for concurrent
// use; its readings may be read by many goroutines once Take returned.
type Pass struct {
	index    map[*Source]int32 // source -> its entry
	entries  []passEntry
	readings []Reading

	// The walk's scratch: the tables aggregated on the path from the
	// root, with their accumulators, one per value.
	tables []passTable
	accs   []acc
}

// passEntry is one source the pass read: its groups as they were, and
// where their readings start (group by group, table order within one).
type passEntry struct {
	src    *Source
	parent int32 // the parent's entry; -1 for a root
	groups []*group
	first  int
}

// passTable is a table aggregated by a source on the walk's path, with
// the offset of its accumulators in Pass.accs.
type passTable struct {
	table *Table
	accs  int
}

// Take reads the visible values below each of roots (a hidden root is
// left out), replacing what p held. Roots should not overlap: a root
// already read as part of an earlier one is skipped, but an earlier root
// below a later one is read again.
func (p *Pass) Take(roots ...*Source) {
	if p.index == nil {
		p.index = map[*Source]int32{}
	}
	clear(p.index)
	clear(p.entries) // drop the old groups for the collector
	p.entries = p.entries[:0]
	p.readings = p.readings[:0]
	for _, r := range roots {
		if r == nil || r.Hidden() {
			continue
		}
		if _, done := p.index[r]; done {
			continue
		}
		p.visit(r, -1, 0, 0, true)
	}
	p.tables, p.accs = p.tables[:0], p.accs[:0]
}

// visit reads s and its subtree. p.tables[lo:hi] are the accumulators
// of the tables aggregated above s. visible tells whether s is in the pass
// (no hidden source on the path).
func (p *Pass) visit(s *Source, parent int32, lo, hi int, visible bool) {
	groups := load(&s.groups)
	// This source's accumulators: for a table aggregated above, the
	// caller's (values add straight into them), or fresh ones when s
	// aggregates the table too and so needs its subtree's total on its
	// own; then fresh ones for the tables s alone aggregates (when its
	// aggregates are shown).
	mine, marks := len(p.tables), len(p.accs)
	for j := lo; j < hi; j++ {
		pt := p.tables[j]
		if s.aggregates(pt.table) {
			pt = p.open(pt.table)
		}
		p.tables = append(p.tables, pt)
	}
	if visible {
		for _, g := range groups {
			if g.aggregate() && p.find(mine, g.table) < 0 {
				p.tables = append(p.tables, p.open(g.table))
			}
		}
	}
	end := len(p.tables)
	if !visible && end == mine {
		return // nothing here is shown or counted above
	}

	first, self := -1, int32(-1)
	if visible {
		self = int32(len(p.entries))
		p.index[s] = self
		first = len(p.readings)
		n := 0
		for _, g := range groups {
			n += g.table.Len()
		}
		p.entries = append(p.entries, passEntry{src: s, parent: parent, groups: groups, first: first})
		p.readings = append(p.readings, make([]Reading, n)...)
	}

	// Simple values: read each once, for the pass and the aggregates.
	at := first
	for _, g := range groups {
		n := g.table.Len()
		if g.aggregate() {
			at += n
			continue
		}
		a := -1
		if j := p.find(mine, g.table); j >= 0 {
			a = p.tables[j].accs
		}
		if !visible && a < 0 {
			continue // counted by no aggregate above
		}
		revoked := g.revoked.Load()
		for i := range n {
			d := &g.table.values[i]
			if revoked {
				if visible {
					p.readings[at+i] = Reading{Type: d.Type}
				}
				continue
			}
			raw, ok := g.load(i)
			if a >= 0 {
				p.accs[a+i].add(raw, ok)
			}
			if visible {
				r := Reading{Type: d.Type, Absent: !ok}
				if ok {
					r.Raw = d.Type.normalize(raw)
				}
				p.readings[at+i] = r
			}
		}
		at += n
	}

	for _, c := range load(&s.subs) {
		p.visit(c, self, mine, end, visible && !c.Hidden())
	}

	// This source's aggregates, from its accumulators.
	if visible {
		at = first
		for _, g := range groups {
			n := g.table.Len()
			if g.aggregate() {
				revoked := g.revoked.Load()
				a := p.tables[p.find(mine, g.table)].accs
				for i := range n {
					d := &g.table.values[i]
					if revoked {
						p.readings[at+i] = Reading{Type: d.Type}
					} else {
						p.readings[at+i] = p.accs[a+i].result(d)
					}
				}
			}
			at += n
		}
	}
	// Add the subtree's totals to the caller's, then close them.
	for j := lo; j < hi; j++ {
		if a, b := p.tables[j].accs, p.tables[mine+j-lo].accs; a != b {
			for i := range p.tables[j].table.Len() {
				p.accs[a+i].merge(&p.accs[b+i])
			}
		}
	}
	p.tables, p.accs = p.tables[:mine], p.accs[:marks]
}

// open opens fresh, empty accumulators for every value of t.
func (p *Pass) open(t *Table) passTable {
	pt := passTable{table: t, accs: len(p.accs)}
	p.accs = append(p.accs, t.empty...)
	return pt
}

// find returns the index of t among the open tables from the from-th on,
// or -1.
func (p *Pass) find(from int, t *Table) int {
	for j := from; j < len(p.tables); j++ {
		if p.tables[j].table == t {
			return j
		}
	}
	return -1
}

// Reading returns v as the pass read it; false when the pass did not read
// it (v's source is outside the pass, hidden, or v was added since).
func (p *Pass) Reading(v ValueRef) (Reading, bool) {
	k, ok := p.index[v.src]
	if !ok {
		return Reading{}, false
	}
	e := &p.entries[k]
	at := e.first
	for _, g := range e.groups {
		if g == v.g {
			return p.readings[at+v.index], true
		}
		at += g.table.Len()
	}
	return Reading{}, false
}

// Read returns v as the pass read it or, when the pass did not read it,
// as v reads now.
func (p *Pass) Read(v ValueRef) Reading {
	if r, ok := p.Reading(v); ok {
		return r
	}
	return v.Read()
}

// Has reports whether the pass read s.
func (p *Pass) Has(s *Source) bool {
	_, ok := p.index[s]
	return ok
}

// Samples returns every visible value of the pass as a Sample, in walk
// order (each root's tree in Walk order), with paths below each root.
// Values added with HiddenGroup are left out.
func (p *Pass) Samples() []Sample {
	paths := make([]string, len(p.entries))
	labels := make([][]Label, len(p.entries))
	out := make([]Sample, 0, len(p.readings))
	for k := range p.entries {
		e := &p.entries[k]
		path, l := "", []Label(nil)
		if e.parent >= 0 {
			path, l = e.src.name, labels[e.parent]
			if pp := paths[e.parent]; pp != "" {
				path = pp + "/" + e.src.name
			}
			if e.src.label != "" {
				l = append(l[:len(l):len(l)], Label{e.src.label, e.src.LabelValue()})
			}
		}
		paths[k], labels[k] = path, l
		at := e.first
		for _, g := range e.groups {
			if !g.hidden {
				for i := range g.table.values {
					out = append(out, Sample{
						Path:      path,
						Labels:    l,
						Value:     &g.table.values[i],
						Aggregate: g.aggregate(),
						Reading:   p.readings[at+i],
					})
				}
			}
			at += g.table.Len()
		}
	}
	return out
}
