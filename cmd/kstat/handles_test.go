package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/kstat/kstat/internal/bufstat"
	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/internal/irqcount"
	"github.com/kstat/kstat/internal/netout"
	"github.com/kstat/kstat/internal/selfstat"
	"github.com/kstat/kstat/internal/telemetry"
	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/internal/tracer"
)

// A daemon's producers outside the collectors (internal/collector's own
// test resolves those on fixtures): each exported constant of the files
// below, and the path in the mount it must name. pid stands for a traced
// process's directory.
var daemonHandles = []struct {
	file  string // the file declaring ident, from the repository root
	ident string
	path  string
}{
	{"internal/netout/tree.go", "Dir", netout.Dir},
	{"internal/netout/tree.go", "DirIPv4", netout.DirIPv4},
	{"internal/netout/tree.go", "DirIPv6", netout.DirIPv6},
	{"internal/netout/tree.go", "ValueNout", netout.Dir + "/" + netout.ValueNout},
	{"internal/netout/tree.go", "ValueCgroupsDropped", netout.Dir + "/" + netout.ValueCgroupsDropped},
	{"internal/netout/tree.go", "ValueTCPPackets", netout.DirIPv4 + "/" + netout.ValueTCPPackets},
	{"internal/netout/tree.go", "ValueTCPBytes", netout.DirIPv6 + "/" + netout.ValueTCPBytes},
	{"internal/netout/tree.go", "ValueUDPPackets", netout.DirIPv4 + "/" + netout.ValueUDPPackets},
	{"internal/netout/tree.go", "ValueUDPBytes", netout.DirIPv6 + "/" + netout.ValueUDPBytes},
	{"internal/netout/tree.go", "ValueOtherPackets", netout.DirIPv4 + "/" + netout.ValueOtherPackets},
	{"internal/netout/tree.go", "ValueOtherBytes", netout.DirIPv6 + "/" + netout.ValueOtherBytes},
	{"internal/netout/tree.go", "KnobCounter", netout.Dir + "/" + netout.KnobCounter},
	{"internal/netout/tree.go", "KnobStart", netout.Dir + "/" + netout.KnobStart},

	{"internal/tracer/tree.go", "Dir", tracer.Dir},
	{"internal/tracer/tree.go", "ValueForks", tracer.Dir + "/" + tracer.ValueForks},
	{"internal/tracer/tree.go", "ValueExecs", "pid/" + tracer.ValueExecs},
	{"internal/tracer/tree.go", "ValueKmallocCalls", "pid/" + tracer.ValueKmallocCalls},
	{"internal/tracer/tree.go", "ValueAllocatedBytes", "pid/" + tracer.ValueAllocatedBytes},
	{"internal/tracer/tree.go", "ValueFreedBytes", "pid/" + tracer.ValueFreedBytes},
	{"internal/tracer/tree.go", "ValueOutstandingBytes", "pid/" + tracer.ValueOutstandingBytes},
	{"internal/tracer/tree.go", "ValueLockContentions", "pid/" + tracer.ValueLockContentions},
	{"internal/tracer/tree.go", "ValueLockWaitSeconds", "pid/" + tracer.ValueLockWaitSeconds},
	{"internal/tracer/tree.go", "ControlComm", "pid/" + tracer.ControlComm},

	{"internal/selfstat/selfstat.go", "Dir", selfstat.Dir},
	{"internal/selfstat/selfstat.go", "UptimeSeconds", selfstat.Dir + "/" + selfstat.UptimeSeconds},
	{"internal/selfstat/selfstat.go", "Goroutines", selfstat.Dir + "/" + selfstat.Goroutines},
	{"internal/selfstat/selfstat.go", "HeapBytes", selfstat.Dir + "/" + selfstat.HeapBytes},
	{"internal/selfstat/selfstat.go", "OpenFDs", selfstat.Dir + "/" + selfstat.OpenFDs},
	{"internal/selfstat/selfstat.go", "GCCycles", selfstat.Dir + "/" + selfstat.GCCycles},
	{"internal/selfstat/selfstat.go", "FUSELookups", selfstat.Dir + "/" + selfstat.FUSELookups},
	{"internal/selfstat/selfstat.go", "FUSEReaddirs", selfstat.Dir + "/" + selfstat.FUSEReaddirs},
	{"internal/selfstat/selfstat.go", "FUSEOpens", selfstat.Dir + "/" + selfstat.FUSEOpens},
	{"internal/selfstat/selfstat.go", "FUSEReads", selfstat.Dir + "/" + selfstat.FUSEReads},
	{"internal/selfstat/selfstat.go", "FUSEWrites", selfstat.Dir + "/" + selfstat.FUSEWrites},
	{"internal/selfstat/selfstat.go", "FUSERefused", selfstat.Dir + "/" + selfstat.FUSERefused},
	{"internal/selfstat/selfstat.go", "StartTimeSeconds", selfstat.Dir + "/" + selfstat.StartTimeSeconds},

	{"internal/telemetry/sources.go", "Dir", telemetry.Dir},
	{"internal/telemetry/sources.go", "ControlSnapshots", telemetry.Dir + "/" + telemetry.ControlSnapshots},

	{"internal/bufstat/bufstat.go", "ControlName", bufstat.ControlName},

	{"internal/irqcount/tree.go", "Dir", irqcount.Dir},
}

// TestTreeHandles starts a daemon with KSTAT and the tracer (tracing this
// test's process) and finds, in its mount, the file or directory every
// exported tree constant of netout, tracer, selfstat, telemetry, bufstat
// and irqcount names. A constant a producer stopped using fails here, and so
// does a constant the table above does not list.
func TestTreeHandles(t *testing.T) {
	testutil.RequireBPF(t, ebpf.RawTracepoint)
	pid := strconv.Itoa(os.Getpid())
	d := startDaemon(t, "--listen", "", "--tracer", "--tracer-pid", pid)
	// This process allocates as it reads the mount, so the tracer gives
	// it a directory.
	procDir := d.Path(filepath.Join(tracer.Dir, pid))
	for i := 0; ; i++ {
		if _, err := os.Stat(procDir); err == nil {
			break
		} else if i == 100 {
			t.Fatalf("no %s after 10 s: %v", procDir, err)
		}
		_, _ = os.ReadDir(d.Path(tracer.Dir))
		time.Sleep(100 * time.Millisecond)
	}

	listed := map[string]bool{}
	for _, h := range daemonHandles {
		listed[h.file+" "+h.ident] = true
		p := h.path
		if rest, ok := strings.CutPrefix(p, "pid/"); ok {
			p = filepath.Join(tracer.Dir, pid, rest)
		}
		if _, err := os.Stat(d.Path(p)); err != nil {
			t.Errorf("%s %s: %v", h.file, h.ident, err)
		}
	}
	files := map[string]bool{}
	for _, h := range daemonHandles {
		files[h.file] = true
	}
	for file := range files {
		for _, ident := range testutil.ExportedConsts(t, filepath.Join("..", "..", file)) {
			if !listed[file+" "+ident] {
				t.Errorf("%s exports %s, which daemonHandles does not check", file, ident)
			}
		}
	}
}

// viewDirs and viewFiles are the code that reads the tree (from the
// repository root): views and clients.
var (
	viewDirs  = []string{"internal/bufstat", "internal/telemetry", "internal/history", "internal/tracetop", "web"}
	viewFiles = []string{"cmd/kstat/report.go", "cmd/kstat/trace.go", "cmd/kstat/leaks.go", "cmd/kstat/telemetry.go", "cmd/kstat/tcp.go", "internal/client/client.go"}
)

// treeLookups are the functions and methods views find sources and values
// with, and which of their arguments name a path or value (nil: all of
// them): statsfs's look-ups, the client's and the registry's Get, and the
// views' own helpers.
// The history's gauge and counter take a series key first, which is not a
// tree path.
var treeLookups = map[string][]int{
	"Find": nil, "FindVisible": nil, "Subordinate": nil, "GetByName": nil, "LookupName": nil, "Control": nil,
	"Get": nil, "get": nil, "find": nil, "source": nil, "lines": nil, "value": nil, "num": nil, "rate": nil,
	"gauge": {1, 2}, "counter": {1, 2},
	// Collector names: the registry's Only, and bufstat's failed.
	"Only": nil, "failed": {2},
}

// TestViewsNameNoTreePaths checks that the views pass no string literal to
// a tree look-up: paths and value names come from the producers' exported
// constants, so a rename does not compile instead of failing at run time.
// Only "/", which joins a constant to an instance's name, may appear. Nor
// may a view hold a literal that reads as a path below a top-level
// directory ("net/dev"), wherever it is (a list of paths, say).
func TestViewsNameNoTreePaths(t *testing.T) {
	files := slices.Clone(viewFiles)
	for _, dir := range viewDirs {
		ms, err := filepath.Glob(filepath.Join("..", "..", dir, "*.go"))
		if err != nil || len(ms) == 0 {
			t.Fatalf("%s: no Go files (%v)", dir, err)
		}
		for _, m := range ms {
			if !strings.HasSuffix(m, "_test.go") {
				files = append(files, strings.TrimPrefix(m, filepath.Join("..", "..")+"/"))
			}
		}
	}
	for _, file := range files {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, filepath.Join("..", "..", file), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		imports := map[*ast.BasicLit]bool{}
		for _, imp := range f.Imports {
			imports[imp.Path] = true
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING && !imports[lit] {
				if v, err := strconv.Unquote(lit.Value); err == nil && treePathLike(v) {
					t.Errorf("%s: the literal %s is a tree path: use the producer's constant", fset.Position(lit.Pos()), lit.Value)
				}
			}
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			var name string
			switch fn := call.Fun.(type) {
			case *ast.Ident:
				name = fn.Name
			case *ast.SelectorExpr:
				name = fn.Sel.Name
			}
			args, ok := treeLookups[name]
			if !ok {
				return true
			}
			for i, a := range call.Args {
				if args != nil && !slices.Contains(args, i) {
					continue
				}
				ast.Inspect(a, func(n ast.Node) bool {
					if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING && lit.Value != `"/"` {
						t.Errorf("%s: %s(...) is given the literal %s: use the producer's constant", fset.Position(lit.Pos()), name, lit.Value)
					}
					return true
				})
			}
			return true
		})
	}
}

// treePathLike reports whether v reads as a path below one of the tree's
// top-level directories: "net/dev", not "net/" (a prefix the dashboard's
// series keys start with).
func treePathLike(v string) bool {
	top, rest, ok := strings.Cut(v, "/")
	if !ok || rest == "" || strings.HasSuffix(rest, "/") {
		return false
	}
	switch top {
	case collector.DirSystem, collector.DirMemory, collector.DirBlock, collector.DirMM, collector.DirNet,
		collector.DirIRQ, collector.DirSoftirq, netout.Dir, tracer.Dir, selfstat.Dir, telemetry.Dir, irqcount.Dir:
		return true
	}
	return false
}
