package tracer

import (
	"strings"
	"testing"
)

func TestFormatTableSorts(t *testing.T) {
	procs := []Proc{
		{Pid: 30, Comm: "b", Kmalloc: 5, BytesOut: 100},
		{Pid: 10, Comm: "c", Kmalloc: 7, BytesOut: 100, LockCount: [len(LockKinds)]uint64{lockMutex: 2, lockSemaphore: 1}},
		{Pid: 20, Comm: "a", Kmalloc: 7, BytesOut: 300, ThreadExits: 1, ChildExits: 2},
	}
	order := func(by string) string {
		out := FormatTable(procs, by, 0)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var pids []string
		for _, l := range lines[1:] {
			pids = append(pids, strings.Fields(l)[0])
		}
		return strings.Join(pids, " ")
	}
	for by, want := range map[string]string{
		"pid":       "10 20 30",
		"comm":      "20 30 10",
		"kmalloc":   "10 20 30", // ties by pid
		"out_bytes": "20 10 30",
		"exits":     "20 10 30",
		"locks":     "10 20 30",
		"bogus":     "10 20 30",
	} {
		if got := order(by); got != want {
			t.Errorf("sorted by %s: %s, want %s", by, got, want)
		}
	}
	if procs[0].Pid != 30 {
		t.Error("FormatTable reordered its argument")
	}
	out := FormatTable(procs, "pid", 2)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("limit 2 gave %d lines", len(lines))
	}
	head := strings.Fields(lines[0])
	if len(head) != len(columns) || head[0] != "PID" || head[2] != "COMM" {
		t.Errorf("header %q", lines[0])
	}
	row := strings.Fields(lines[1]) // pid 10
	for i, h := range head {
		want := map[string]string{"LOCKS": "3", "MUTEX": "2", "SEM": "1", "KMALLOC": "7", "COMM": "c"}[h]
		if want != "" && row[i] != want {
			t.Errorf("column %s = %s, want %s", h, row[i], want)
		}
	}
	for _, c := range SortColumns() {
		if !ValidSort(c) {
			t.Errorf("column %s not valid for sorting", c)
		}
	}
}
