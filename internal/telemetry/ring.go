package telemetry

import "sync"

// Ring keeps the last N snapshots, as the kernel module's circular buffer
// did. It is safe for concurrent use.
type Ring struct {
	mu   sync.Mutex
	buf  []Snapshot
	next int // where the next snapshot goes
	full bool
}

// NewRing returns a ring of n snapshots; n must be at least 1.
func NewRing(n int) *Ring {
	if n < 1 {
		panic("telemetry: ring size below 1")
	}
	return &Ring{buf: make([]Snapshot, n)}
}

// Cap is the number of snapshots the ring keeps.
func (r *Ring) Cap() int { return len(r.buf) }

// Add stores s, dropping the oldest snapshot when the ring is full.
func (r *Ring) Add(s Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = s
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
}

// Snapshots returns the kept snapshots, oldest first.
func (r *Ring) Snapshots() []Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]Snapshot(nil), r.buf[:r.next]...)
	}
	return append(append(make([]Snapshot, 0, len(r.buf)), r.buf[r.next:]...), r.buf[:r.next]...)
}

// Text is every kept snapshot's block, oldest first, separated by blank
// lines: the telemetry/snapshots file.
func (r *Ring) Text() string {
	snaps := r.Snapshots()
	if len(snaps) == 0 {
		return "no snapshots yet (telemetry/enable is 0, or the first log_interval has not passed)\n"
	}
	var out []byte
	for i := range snaps {
		if i > 0 {
			out = append(out, '\n')
		}
		out = append(out, snaps[i].Text()...)
	}
	return string(out)
}
