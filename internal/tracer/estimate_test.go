package tracer

import (
	"math"
	"testing"
)

// TestSampledEstimate holds 10,000 pipes (their read ends) in a helper traced at once by an
// exact tracer (sample_every 1) and a sampled one (64). The sampled
// tracer's outstanding bytes must lie within 4 standard deviations of the
// exact figure, the deviation computed from the exact tracer's own
// allocation sizes: Var = (N-1) Σ size² (internal/bpf/tracer/README.md).
// And they must be N × the exact tracer's allocations whose address hash
// is sampled, which checks the programs' hash and threshold against Go's.
// Calls and allocated bytes are exact in both.
func TestSampledEstimate(t *testing.T) {
	const pipes, n = 10000, 64
	// The helper keeps each pipe's read end only (the pipe stays, one
	// file less): 10,000 descriptors fit the usual limits.
	h := startHelper(t, "pipes", "KSTAT_PIPES=10000", "KSTAT_PIPE_READ_ONLY=1")
	exact := openTracer(t, Options{Pids: []uint32{h.Pid}, SampleEvery: 1, MaxAllocs: 1 << 18})
	sampled := openTracer(t, Options{Pids: []uint32{h.Pid}, SampleEvery: n})
	h.Do("open")
	pe, ps := mustProc(t, exact, h.Pid), mustProc(t, sampled, h.Pid)
	allocs, err := exact.Allocs()
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := exact.Counters(); c.AllocsDropped != 0 {
		t.Fatalf("the exact tracer's map was full: %+v", c)
	}
	var sumSq, pred float64
	var objs int
	thresh := Threshold(n)
	for _, a := range allocs {
		if a.Pid != h.Pid {
			continue
		}
		objs++
		s := float64(a.Size)
		sumSq += s * s
		if AddrHash(a.Addr) <= thresh {
			pred += n * s
		}
	}
	sigma := math.Sqrt((n - 1) * sumSq)
	x, e := float64(pe.BytesOut), float64(ps.BytesOut)
	t.Logf("%d pipes: %d objects outstanding, exact %.0f bytes, estimate %.0f (%+.2f%%), sigma %.0f (%.2f%%), N x sampled from the exact map %.0f",
		pipes, objs, x, e, 100*(e-x)/x, sigma, 100*sigma/x, pred)
	if objs < 3*pipes || x < 3*pipes*64 {
		t.Fatalf("only %d objects, %.0f bytes outstanding for %d pipes: the workload did not run", objs, x, pipes)
	}
	if math.Abs(e-x) > 4*sigma {
		t.Errorf("estimate %.0f is %.1f sigma from the exact %.0f", e, math.Abs(e-x)/sigma, x)
	}
	// Allocations made between the two attaches, or freed in between,
	// differ: a few objects at most.
	if math.Abs(e-pred) > 0.01*x {
		t.Errorf("estimate %.0f, but N x the sampled addresses of the exact map is %.0f", e, pred)
	}
	if pe.Kmalloc != ps.Kmalloc || pe.CacheAlloc != ps.CacheAlloc || pe.BytesAlloc != ps.BytesAlloc {
		t.Errorf("calls or bytes differ: exact %+v, sampled %+v", pe, ps)
	}
	// The sampled tracer tracks about 1 in N.
	sc, _ := sampled.Counters()
	if lo, hi := objs/n/2, objs/n*2; int(sc.AllocsTracked) < lo || int(sc.AllocsTracked) > hi {
		t.Errorf("sampled tracer tracks %d allocations of %d, want about %d", sc.AllocsTracked, objs, objs/n)
	}
}
