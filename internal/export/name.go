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
// prefix[_all]_name[_unit][_total], _all for an aggregate over every
// instance. The unit is not repeated when the name already ends with it,
// and counters end in _total.
func metricName(prefix string, v *statsfs.Value, aggregate, counter bool) string {
	name := prefix
	if aggregate {
		name += "_all"
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

// aggrHelp says what an aggregate over the instances labelled key is.
var aggrHelp = map[statsfs.Aggr]string{
	statsfs.Sum: "summed", statsfs.Min: "the least", statsfs.Max: "the largest",
	statsfs.CountZero: "counting the zeros", statsfs.Avg: "averaged",
}

// help is the HELP text of family name in one style: a sentence that
// starts with a capital and ends with a period, without the mount's
// phrases ("write 0 to clear"); a stand-in naming the family when the
// value has none. An aggregate says what it covers.
func help(name string, v *statsfs.Value, aggregate bool, key string) string {
	h := v.Help
	if h == "" {
		h = "kstat statistic " + name + " (no description)"
	}
	h = tidyHelp(h)
	if aggregate {
		h = strings.TrimSuffix(h, ".") + ", " + aggrHelp[v.Aggr] + " over every " + key + " (those over the budget too)."
	}
	return h
}

// mountPhrases are parts of value helps that concern the mount only.
var mountPhrases = []string{" (write 0 to clear)", "; write 0 to clear", ", write 0 to clear"}

// tidyHelp capitalizes h, drops the mount's phrases and ends it with a
// period.
func tidyHelp(h string) string {
	for _, p := range mountPhrases {
		h = strings.ReplaceAll(h, p, "")
	}
	h = strings.TrimSpace(h)
	if h == "" {
		return h
	}
	first, _, _ := strings.Cut(h, " ")
	if c := h[0]; c >= 'a' && c <= 'z' && !kernelWords[first] {
		h = string(c-'a'+'A') + h[1:]
	}
	if !strings.HasSuffix(h, ".") {
		h += "."
	}
	return h
}

// kernelWords are kernel identifiers a HELP text may start with, which
// keep their case.
var kernelWords = map[string]bool{"kmalloc": true, "kfree": true, "kmem_cache_alloc": true, "kmem_cache_free": true, "execve": true}

// MaxLabelLen bounds the text of a label from a control or an Info
// value: a kernel command name has at most 15 bytes, a description more.
const MaxLabelLen = 128

// labelValue makes valid, bounded label text of s.
func labelValue(s string) string {
	if len(s) > MaxLabelLen {
		s = s[:MaxLabelLen]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// boundLabel is labelValue for the per-series labels (comm): at most 16
// bytes, the kernel's TASK_COMM_LEN.
func boundLabel(s string) string {
	if len(s) > 16 {
		s = s[:16]
	}
	return labelValue(s)
}
