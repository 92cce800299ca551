package history

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
)

// MarshalJSON writes the history in columns, as charts take them:
//
//	{"step_ms": 1000, "window_ms": 900000, "times": [t0, t1, ...],
//	 "series": {"mem/used": {"start": 0, "values": [v0, null, ...]}, ...},
//	 "charts": [...], "procs": [...], "traced": n}
//
// with times in Unix milliseconds. A series' values are those of samples
// start, start+1, ... up to its last value; null where a sample lacks it,
// and the samples before start and after the values lack it too.
func (h History) MarshalJSON() ([]byte, error) {
	keys := map[string]bool{}
	for _, s := range h.Samples {
		for k := range s.Values {
			keys[k] = true
		}
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)

	b := []byte(`{"step_ms":`)
	b = strconv.AppendInt(b, h.Step.Milliseconds(), 10)
	b = append(b, `,"window_ms":`...)
	b = strconv.AppendInt(b, h.Window.Milliseconds(), 10)
	b = append(b, `,"times":[`...)
	for i, s := range h.Samples {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, s.Time, 10)
	}
	b = append(b, `],"series":{`...)
	for i, k := range sorted {
		if i > 0 {
			b = append(b, ',')
		}
		q, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		b = append(b, q...)
		// Only the span where the key has values: a process or a
		// device is often in a few samples of the window.
		first, last := -1, -1
		for j, s := range h.Samples {
			if _, ok := s.Values[k]; ok {
				if first < 0 {
					first = j
				}
				last = j
			}
		}
		b = append(b, `:{"start":`...)
		b = strconv.AppendInt(b, int64(max(first, 0)), 10)
		b = append(b, `,"values":[`...)
		for j := first; first >= 0 && j <= last; j++ {
			if j > first {
				b = append(b, ',')
			}
			b = appendNumber(b, h.Samples[j].Values, k)
		}
		b = append(b, "]}"...)
	}
	b = append(b, "},"...)
	rest, err := json.Marshal(struct {
		Charts []Chart `json:"charts"`
		Procs  []Proc  `json:"procs"`
		Traced int     `json:"traced"`
	}{nonNil(h.Update.Charts), nonNil(h.Update.Procs), h.Update.Traced})
	if err != nil {
		return nil, err
	}
	return append(b, rest[1:]...), nil
}

// appendNumber appends m[k] as a JSON number, or null when it is absent
// or not a number JSON has.
func appendNumber(b []byte, m map[string]float64, k string) []byte {
	v, ok := m[k]
	if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
