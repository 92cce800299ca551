package statsfs

// Label is an instance label: a source made by NewInstance contributes
// {key, name} (or the value given to NewLabeledInstance) to the labels of
// everything below it.
type Label struct {
	Name, Value string
}

// Sample is one visible value as read by Snapshot.
type Sample struct {
	Path      string  // slash-separated source path below the walk's root ("" for the root)
	Labels    []Label // instance labels along the path, outermost first
	Value     *Value
	Aggregate bool
	Reading   Reading
}

// Walk calls fn for s and every visible source below it, depth first and
// oldest child first, with the source's path below s and its instance
// labels. When fn returns false the source's subtree is skipped. Hidden
// sources and their subtrees are not visited. A labels slice is never
// changed after fn sees it, so fn may keep it.
func (s *Source) Walk(fn func(path string, labels []Label, src *Source) bool) {
	if s.Hidden() {
		return
	}
	s.walk("", nil, fn)
}

func (s *Source) walk(path string, labels []Label, fn func(string, []Label, *Source) bool) {
	if !fn(path, labels, s) {
		return
	}
	for _, c := range load(&s.subs) {
		if c.Hidden() {
			continue
		}
		p := c.name
		if path != "" {
			p = path + "/" + c.name
		}
		l := labels
		if c.label != "" {
			l = append(labels[:len(labels):len(labels)], Label{c.label, c.LabelValue()})
		}
		c.walk(p, l, fn)
	}
}

// Snapshot reads every visible value of the tree below s once, in Walk
// order, in one Pass. Values added with HiddenGroup are left out.
func (s *Source) Snapshot() []Sample {
	var p Pass
	p.Take(s)
	return p.Samples()
}
