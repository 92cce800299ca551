package tracetop

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/kstat/kstat/internal/tracer"
)

// Groups are the column groups the view can narrow to, in the order the
// group key cycles through them; "" shows every group.
var Groups = []string{"", tracer.GroupProcess, tracer.GroupMemory, tracer.GroupLocks}

// priority orders the columns by how much a narrow terminal wants them,
// taking from each group in turn; pid and comm are always shown. Columns
// of the tracer not named here come last.
var priority = []string{
	"forks", "kmalloc", "locks", "execs", "alloc_bytes", "wait_us",
	"exits", "kfree", "out_bytes", "threads", "freed_bytes", "max_wait_us",
	"ppid", "cache_alloc", "cache_free", "out_allocs", "mutex", "spin",
	"rwsem", "sem", "failed",
}

// width is how many terminal cells a column's values get.
func width(c tracer.Column) int {
	switch c.Name {
	case "pid", "ppid":
		return 7
	case "comm":
		return 15 // TASK_COMM_LEN - 1
	}
	return max(len(c.Name)+1, 6) // room for the sort mark
}

// Layout picks the columns that fit in cols terminal cells (a space
// between columns), in table order: pid and comm, the sort column, then
// the group's columns (every group's when group is "") by priority.
// cols <= 0 takes every column.
func Layout(cols int, group, sortBy string) []tracer.Column {
	all := tracer.Columns()
	byName := map[string]tracer.Column{}
	for _, c := range all {
		byName[c.Name] = c
	}
	order := []string{"pid", "comm", sortBy}
	order = append(order, priority...)
	for _, c := range all {
		order = append(order, c.Name)
	}
	chosen := map[string]bool{}
	used := 0
	for i, name := range order {
		c, ok := byName[name]
		if !ok || chosen[name] {
			continue
		}
		if i >= 3 { // pid, comm and the sort column are always shown
			if group != "" && c.Group != group || cols > 0 && used+width(c)+1 > cols {
				continue
			}
		}
		chosen[name] = true
		used += width(c) + 1
	}
	var out []tracer.Column
	for _, c := range all {
		if chosen[c.Name] {
			out = append(out, c)
		}
	}
	return out
}

// Cell is the text of column c for row r, at most w cells wide when it
// can be (w <= 0: exact). Counts are per second over the frame's interval
// unless the frame is cumulative; gauges are the value now.
func (f *Frame) Cell(c tracer.Column, r *Row, w int) string {
	if c.Text != nil {
		return c.Text(&r.Total)
	}
	if c.Gauge || f.Settings.Cumulative {
		return human(float64(c.Num(&r.Total)), w)
	}
	if f.Seconds <= 0 {
		return "-"
	}
	return human(float64(c.Num(&r.Delta))/f.Seconds, w)
}

// human prints v exactly when that fits in w cells (one decimal for a
// fraction under 100), else scaled with k, M, G or T.
func human(v float64, w int) string {
	exact := strconv.FormatFloat(v, 'f', 0, 64)
	if v != math.Trunc(v) && v < 100 {
		exact = strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0")
		if exact == "0" { // some, not none
			exact = strconv.FormatFloat(v, 'g', 1, 64)
		}
	}
	if w <= 0 || len(exact) <= w {
		return exact
	}
	for _, unit := range []string{"k", "M", "G", "T", "P"} {
		v /= 1000
		for _, prec := range []int{1, 0} {
			s := strconv.FormatFloat(v, 'f', prec, 64) + unit
			if len(s) <= w {
				return s
			}
		}
	}
	return strings.Repeat("#", w)
}

// Title is the header of column c: its name upper-cased, the sort column
// marked with its direction.
func (f *Frame) Title(c tracer.Column) string {
	t := strings.ToUpper(c.Name)
	if c.Name == f.Settings.Sort {
		if c.Ascend {
			return t + "▲"
		}
		return t + "▼"
	}
	return t
}

// Status is the line above the table: time, what the numbers are, how
// many processes, the sort and filter, and what the tracer missed.
func (f *Frame) Status() string {
	var b strings.Builder
	b.WriteString(f.Time.Format("15:04:05"))
	if f.Settings.Cumulative {
		b.WriteString("  counts since start")
	} else {
		fmt.Fprintf(&b, "  per second over %.1fs", f.Seconds)
	}
	fmt.Fprintf(&b, "  %d/%d procs  sort %s", len(f.Rows), f.Procs, f.Settings.Sort)
	if f.Settings.Filter != "" {
		fmt.Fprintf(&b, "  filter %q", f.Settings.Filter)
	}
	if f.Settings.Comm != "" {
		fmt.Fprintf(&b, "  comm %q", f.Settings.Comm)
	}
	c := f.Counters
	if c.ProcsDropped > 0 {
		fmt.Fprintf(&b, "  %d events lost (map full)", c.ProcsDropped)
	}
	if c.AllocsDropped > 0 {
		fmt.Fprintf(&b, "  %d allocs untracked", c.AllocsDropped)
	}
	return b.String()
}

// Plain prints the frame as a "---" line, the status line and a table of
// the columns that fit in cols (cols <= 0: all), at most limit rows (0:
// all), for a pipe or a file.
func (f *Frame) Plain(cols, limit int) string {
	var b strings.Builder
	b.WriteString("---\n")
	b.WriteString(f.Status())
	b.WriteByte('\n')
	shown := Layout(cols, "", f.Settings.Sort)
	w := tabwriter.NewWriter(&b, 1, 8, 1, ' ', tabwriter.AlignRight)
	for _, c := range shown {
		fmt.Fprintf(w, "%s\t", strings.ToUpper(c.Name))
	}
	fmt.Fprintln(w)
	rows := f.Rows
	if limit > 0 && len(rows) > limit {
		rows = rows[:limit]
	}
	for i := range rows {
		for _, c := range shown {
			fmt.Fprintf(w, "%s\t", f.Cell(c, &rows[i], 0))
		}
		fmt.Fprintln(w)
	}
	_ = w.Flush()
	return b.String()
}
