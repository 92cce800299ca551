package testutil

import (
	"encoding/json"
	"os/exec"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
)

// BpftoolProg is what `bpftool prog show --json` prints of a program's
// cost: an independent reader of the kernel's program info.
type BpftoolProg struct {
	ID              uint32 `json:"id"`
	RunTimeNs       uint64 `json:"run_time_ns"`
	RunCnt          uint64 `json:"run_cnt"`
	RecursionMisses uint64 `json:"recursion_misses"`
}

// Bpftool runs `bpftool prog show id ID --json` and returns its figures.
func Bpftool(tb testing.TB, id ebpf.ProgramID) BpftoolProg {
	tb.Helper()
	RequireCommand(tb, "bpftool")
	out, err := exec.Command("bpftool", "prog", "show", "id", strconv.Itoa(int(id)), "--json").Output()
	if err != nil {
		tb.Fatalf("bpftool prog show id %d: %v", id, err)
	}
	var p BpftoolProg
	if err := json.Unmarshal(out, &p); err != nil {
		tb.Fatalf("bpftool: %v: %s", err, out)
	}
	return p
}
