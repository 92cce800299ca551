package statsfs

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
)

// Errors returned by the tree; views map them to errno values.
var (
	ErrNotFound   = errors.New("statsfs: no such value")
	ErrExist      = errors.New("statsfs: values already added")
	ErrPermission = errors.New("statsfs: value is read-only")
	ErrInvalid    = errors.New("statsfs: invalid input")
)

// MaxNameLen is the longest source name kept; longer names are truncated,
// as the original's 100-byte name buffer does.
const MaxNameLen = 99

// GroupFlag modifies one AddValues call.
type GroupFlag uint8

// HiddenGroup adds values that views do not show but aggregates still count.
const HiddenGroup GroupFlag = 1

// group is one AddValues call: a table and the record backing it, or no
// record for an aggregate.
type group struct {
	table   *Table
	record  Record
	partial PartialRecord // record, when it is one; else nil
	hidden  bool
	revoked atomic.Bool
}

func (g *group) aggregate() bool { return g.record == nil }

// load reads value i of a simple group's record and whether it is
// available.
func (g *group) load(i int) (uint64, bool) {
	if g.partial != nil {
		return g.partial.LoadAvailable(i)
	}
	return g.record.Load(i), true
}

// Source is a directory of values and subordinate sources. All methods are
// safe for concurrent use; readers never lock, structural changes are
// published copy-on-write.
type Source struct {
	name   string
	label  string
	value  string // the label's value when it is not name
	hidden atomic.Bool

	mu       sync.Mutex // serialises writers of the slices below
	groups   atomic.Pointer[[]*group]
	subs     atomic.Pointer[[]*Source]
	controls atomic.Pointer[[]*Control]
}

// NewSource returns a source named by fmt.Sprintf(format, args...),
// truncated to MaxNameLen bytes.
func NewSource(format string, args ...any) *Source {
	name := fmt.Sprintf(format, args...)
	if len(name) > MaxNameLen {
		name = name[:MaxNameLen]
	}
	return &Source{name: name}
}

// NewInstance returns a source that is one instance of a family, such as a
// network device: exporters turn its name into the value of label key.
func NewInstance(key, name string) *Source {
	s := NewSource("%s", name)
	s.label = key
	return s
}

// NewLabeledInstance is NewInstance for an instance whose label value
// cannot be a directory name, such as a cgroup path, which holds slashes:
// exporters use value, the tree shows name.
func NewLabeledInstance(key, name, value string) *Source {
	s := NewInstance(key, name)
	s.value = value
	return s
}

// LabelValue is the value of the instance label: the name, unless
// NewLabeledInstance gave another.
func (s *Source) LabelValue() string {
	if s.value != "" {
		return s.value
	}
	return s.name
}

// Name is the source's directory name.
func (s *Source) Name() string { return s.name }

// Label is the instance label key given to NewInstance, or "".
func (s *Source) Label() string { return s.label }

// SetHidden hides or shows the source. A hidden source and its subtree are
// absent from views, yet still counted in its parents' aggregates.
func (s *Source) SetHidden(h bool) { s.hidden.Store(h) }

// Hidden reports whether the source is hidden.
func (s *Source) Hidden() bool { return s.hidden.Load() }

func load[T any](p *atomic.Pointer[[]T]) []T {
	if v := p.Load(); v != nil {
		return *v
	}
	return nil
}

// publish stores a copy of old with the change applied by edit.
func publish[T any](p *atomic.Pointer[[]T], edit func([]T) []T) {
	old := load(p)
	next := edit(append(make([]T, 0, len(old)+1), old...))
	p.Store(&next)
}

// push publishes old with x appended. It appends in place when the backing
// array has room: readers only ever see the elements below their own
// snapshot's length, and a slot past the published length is written once
// (removals always copy), so adding n children costs O(n), not O(n²).
// Callers hold the source's mu.
func push[T any](p *atomic.Pointer[[]T], x T) {
	next := append(load(p), x)
	p.Store(&next)
}

// sameRecord reports whether a and b are the same record. Records of
// types that cannot be compared (a RecordFunc, say) are never the same,
// so adding one twice makes two groups instead of panicking.
func sameRecord(a, b Record) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	return ta == tb && ta.Comparable() && a == b
}

// AddValues adds the values of t to s, backed by r; with a nil r they are
// aggregates over s's subtree. Adding the same (table, record) twice gives
// ErrExist and changes nothing.
func (s *Source) AddValues(t *Table, r Record, flags GroupFlag) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range load(&s.groups) {
		if g.table == t && sameRecord(g.record, r) {
			return fmt.Errorf("%w: table in source %q", ErrExist, s.name)
		}
	}
	g := &group{table: t, record: r, hidden: flags&HiddenGroup != 0}
	g.partial, _ = r.(PartialRecord)
	push(&s.groups, g)
	return nil
}

// AddSubordinate makes c a child of s.
func (s *Source) AddSubordinate(c *Source) {
	s.mu.Lock()
	defer s.mu.Unlock()
	push(&s.subs, c)
}

// RemoveSubordinate unlinks c from s; it does nothing if c is not a child.
func (s *Source) RemoveSubordinate(c *Source) {
	s.mu.Lock()
	defer s.mu.Unlock()
	publish(&s.subs, func(cs []*Source) []*Source {
		for i, x := range cs {
			if x == c {
				return append(cs[:i], cs[i+1:]...)
			}
		}
		return cs
	})
}

// Subordinates returns s's children, oldest first.
func (s *Source) Subordinates() []*Source { return load(&s.subs) }

// Subordinate returns the newest child named name, or nil.
func (s *Source) Subordinate(name string) *Source {
	cs := load(&s.subs)
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i].name == name {
			return cs[i]
		}
	}
	return nil
}

// Find follows a slash-separated path of child names from s ("" is s).
func (s *Source) Find(path string) *Source {
	cur := s
	for path != "" && cur != nil {
		var name string
		name, path, _ = strings.Cut(path, "/")
		if name != "" {
			cur = cur.Subordinate(name)
		}
	}
	return cur
}

// FindVisible is Find for views: nil when s or a source on the way is
// hidden, as well as when one is missing.
func (s *Source) FindVisible(path string) *Source {
	cur := s
	for cur != nil && !cur.Hidden() {
		if path == "" {
			return cur
		}
		var name string
		name, path, _ = strings.Cut(path, "/")
		if name != "" {
			cur = cur.Subordinate(name)
		}
	}
	return nil
}

// Revoke detaches every record from s: its values read 0 from now on and its
// parents' aggregates no longer see them, so the backing data can go.
func (s *Source) Revoke() {
	for _, g := range load(&s.groups) {
		g.revoked.Store(true)
	}
}
