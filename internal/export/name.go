package export

import (
	"strings"

	"github.com/kstat/kstat/statsfs"
)

// sanitize turns one path component, value name or unit into a piece of a
// Prometheus name: camelCase becomes snake_case, letters are lowered, every
// run of characters outside [a-z0-9] becomes one underscore, and leading or
// trailing underscores go. It returns "" when nothing is left.
func sanitize(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 4)
	pendingSep := false
	var prev byte // previous input byte, for camelCase boundaries
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			if prev >= 'a' && prev <= 'z' || prev >= '0' && prev <= '9' {
				pendingSep = true
			}
			c += 'a' - 'A'
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		default:
			pendingSep = true
			prev = c
			continue
		}
		if pendingSep && b.Len() > 0 {
			b.WriteByte('_')
		}
		pendingSep = false
		b.WriteByte(c)
		prev = s[i]
	}
	return b.String()
}

// labelName makes a valid Prometheus label name of an instance key, as
// sanitize does (so never with the reserved "__" prefix); a leading digit
// gets an underscore before it and an empty result becomes "instance_name".
func labelName(key string) string {
	n := sanitize(key)
	switch {
	case n == "":
		return "instance_name"
	case n[0] >= '0' && n[0] <= '9':
		return "_" + n
	}
	return n
}

// appendName adds a sanitized piece to a metric name, with a separating
// underscore; an empty piece adds nothing.
func appendName(name, piece string) string {
	p := sanitize(piece)
	if p == "" {
		return name
	}
	return name + "_" + p
}

// metricName is the family name of value v in a source whose name prefix
// (namespace and non-instance path components) is prefix:
// prefix[_aggr]_name[_unit][_total]. The unit is not repeated when the
// name already ends with it, and counters end in _total.
func metricName(prefix string, v *statsfs.Value, aggregate, counter bool) string {
	name := prefix
	if aggregate {
		name = appendName(name, v.Aggr.String())
	}
	name = appendName(name, v.Name)
	if u := sanitize(v.Unit); u != "" && !strings.HasSuffix(name, "_"+u) {
		name += "_" + u
	}
	if counter && !strings.HasSuffix(name, "_total") {
		name += "_total"
	}
	return name
}

// isCounter reports whether a value is exported as a counter: a cumulative
// simple value, or the sum of cumulative values. Other aggregates of
// counters (min, max, avg, count_zero) can fall when instances come and go,
// so they are gauges.
func isCounter(v *statsfs.Value, aggregate bool) bool {
	if v.Flag&statsfs.Floating != 0 {
		return false
	}
	return !aggregate || v.Aggr == statsfs.Sum
}

// help is the HELP text of family name: the value's Help, or a stand-in
// naming the family when the value has none.
func help(name string, v *statsfs.Value, aggregate bool) string {
	h := v.Help
	if h == "" {
		h = "kstat statistic " + name + " (no description)"
	}
	if aggregate {
		h = v.Aggr.String() + " over the subtree: " + h
	}
	return h
}
