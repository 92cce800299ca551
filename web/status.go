package web

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kstat/kstat/internal/bufstat"
	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/internal/knob"
	"github.com/kstat/kstat/internal/netout"
	"github.com/kstat/kstat/internal/selfstat"
	"github.com/kstat/kstat/internal/tracer"
	"github.com/kstat/kstat/statsfs"
)

// The sources whose values the page's tables show, and the families whose
// instances they list.
var (
	statusSources = []string{
		collector.DirSystem, selfstat.Dir, collector.DirMemory, collector.DirBlock, collector.DirMM, collector.DirSlabinfo,
		collector.DirNet, netout.Dir, netout.DirIPv4, netout.DirIPv6, tracer.Dir,
	}
	statusLists = []string{collector.DirNetDev, collector.DirIRQ, collector.DirSoftirq, collector.DirSlabinfo}
)

// slabTop is how many slab caches the slab panel lists, the largest first.
const slabTop = 12

// Status is what the page's tables show, read from the tree when an event
// is sent. A value the tree lacks is absent.
type Status struct {
	Time    int64                         `json:"t"`      // Unix milliseconds
	Values  map[string]map[string]float64 `json:"values"` // source path -> value name -> number
	Lists   map[string][]Item             `json:"lists"`  // family path -> its instances, in tree order
	Knobs   map[string]string             `json:"knobs"`  // knob path -> setting
	Bufstat string                        `json:"bufstat,omitempty"`
}

// Item is one instance of a family: a network device, an IRQ line, a
// slab cache.
type Item struct {
	Name   string             `json:"name"`
	Values map[string]float64 `json:"values"`
	Text   map[string]string  `json:"text,omitempty"` // values shown as text, such as an IRQ's description
}

// ReadStatus reads the page's tables from root and knobs.
func ReadStatus(root *statsfs.Source, knobs *knob.Registry) *Status {
	st := &Status{
		Time:   time.Now().UnixMilli(),
		Values: map[string]map[string]float64{},
		Lists:  map[string][]Item{},
		Knobs:  map[string]string{},
	}
	for _, p := range statusSources {
		if src := root.FindVisible(p); src != nil {
			st.Values[p], _ = values(src)
		}
	}
	for _, p := range statusLists {
		src := root.FindVisible(p)
		if src == nil {
			continue
		}
		items := []Item{}
		for _, c := range src.Subordinates() {
			if c.Hidden() {
				continue
			}
			vals, text := values(c)
			items = append(items, Item{Name: c.Name(), Values: vals, Text: text})
		}
		if p == collector.DirSlabinfo {
			slices.SortStableFunc(items, func(a, b Item) int {
				return cmp.Compare(b.Values[collector.SlabTotalBytes], a.Values[collector.SlabTotalBytes])
			})
			items = items[:min(len(items), slabTop)]
		}
		st.Lists[p] = items
	}
	if knobs != nil {
		for _, p := range knobs.Paths() {
			if k := knobs.Lookup(p); k != nil {
				st.Knobs[p] = strings.TrimSpace(k.Get())
			}
		}
	}
	if c := root.Control(bufstat.ControlName); c != nil && c.Read != nil && !root.Hidden() {
		st.Bufstat = c.Read()
	}
	return st
}

// values reads src's visible values: numbers, and the text of values
// shown as text. Numbers JSON lacks (NaN, ±Inf) are left out.
func values(src *statsfs.Source) (map[string]float64, map[string]string) {
	nums := map[string]float64{}
	var text map[string]string
	for _, ref := range src.Values() {
		if ref.Hidden() {
			continue
		}
		d := ref.Value()
		rd := ref.Read()
		if d.Show != nil {
			if text == nil {
				text = map[string]string{}
			}
			text[d.Name] = strings.TrimSpace(d.Text(rd))
			continue
		}
		if f := rd.Float64(); !math.IsNaN(f) && !math.IsInf(f, 0) {
			nums[d.Name] = f
		}
	}
	return nums, text
}
