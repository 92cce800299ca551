// Package caps drops the daemon's Linux capabilities once it has started:
// it keeps a chosen set in the permitted and effective sets of every
// thread, clears the others (and the ambient and inheritable sets), drops
// the rest of the bounding set when it may, and sets no_new_privs. It uses
// libcap's Go packages, whose psx package changes every OS thread of the
// process, as POSIX semantics require (a capset syscall alone changes one
// thread).
package caps

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/cap"
)

// Set is a set of capabilities, sorted, without repeats.
type Set []cap.Value

// Default is what the daemon's knob writes and its exit need after
// start-up, as measured on Linux 6.18 (docs/SECURITY.md):
//   - CAP_BPF and CAP_PERFMON: loading the tracer's tp_btf programs and
//     maps when tracer/enable is written (KSTAT's netfilter program and
//     the IRQ counters are loaded at start-up; creating KSTAT's link from
//     the loaded program when kstat/start is written needs no capability);
//   - CAP_SYS_ADMIN: unmounting the statistics filesystem at exit, and
//     entering --netns when kstat/start attaches there.
//
// A daemon that does not run as root may also keep CAP_DAC_READ_SEARCH
// (see DefaultFor).
var Default = Set{cap.SYS_ADMIN, cap.PERFMON, cap.BPF}

// DefaultFor is the default set of a daemon running with effective user
// id euid: Default and, for a user other than root that reads files only
// root may read (rootOnlyFiles: /proc/slabinfo, mode 0400, read by the
// slabinfo collector), CAP_DAC_READ_SEARCH, which every such read needs.
func DefaultFor(euid int, rootOnlyFiles bool) Set {
	if euid == 0 || !rootOnlyFiles {
		return Default.sorted()
	}
	return append(Set{cap.DAC_READ_SEARCH}, Default...).sorted()
}

// Parse reads a comma-separated list of capability names (cap_bpf or
// CAP_BPF or bpf), "default" for def, or "none" (or "") for none.
func Parse(text string, def Set) (Set, error) {
	switch strings.ToLower(strings.TrimSpace(text)) {
	case "default":
		return def.sorted(), nil
	case "none", "":
		return Set{}, nil
	}
	var s Set
	for _, name := range strings.Split(text, ",") {
		n := strings.ToLower(strings.TrimSpace(name))
		if !strings.HasPrefix(n, "cap_") {
			n = "cap_" + n
		}
		v, err := cap.FromName(n)
		if err != nil {
			return nil, fmt.Errorf("capability %q: not a capability name (such as cap_bpf, cap_net_admin), \"default\" or \"none\"", strings.TrimSpace(name))
		}
		s = append(s, v)
	}
	return s.sorted(), nil
}

func (s Set) sorted() Set {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// Has reports whether v is in s.
func (s Set) Has(v cap.Value) bool { return slices.Contains(s, v) }

// String is the set as a comma-separated list (cap_bpf,cap_perfmon) or
// "none".
func (s Set) String() string {
	if len(s) == 0 {
		return "none"
	}
	names := make([]string, len(s))
	for i, v := range s {
		names[i] = v.String()
	}
	return strings.Join(names, ",")
}

// Mask is the set as the bit mask /proc/PID/status shows (CapEff: ...).
func (s Set) Mask() uint64 {
	var m uint64
	for _, v := range s {
		m |= 1 << uint(v)
	}
	return m
}

// Effective returns the calling thread's effective capabilities.
func Effective() (Set, error) {
	return flag(cap.GetProc(), cap.Effective)
}

func flag(c *cap.Set, f cap.Flag) (Set, error) {
	var s Set
	for v := cap.Value(0); v < cap.MaxBits(); v++ {
		on, err := c.GetFlag(f, v)
		if err != nil {
			return nil, err
		}
		if on {
			s = append(s, v)
		}
	}
	return s, nil
}

// Missing returns the capabilities of need the process's effective set
// lacks (none if it cannot tell).
func Missing(need ...cap.Value) Set {
	eff, err := Effective()
	if err != nil {
		return nil
	}
	var miss Set
	for _, v := range need {
		if !eff.Has(v) {
			miss = append(miss, v)
		}
	}
	return miss.sorted()
}

// Drop keeps the capabilities of keep that the process has (permitted)
// and drops every other from all its threads: permitted, effective,
// inheritable and ambient. It drops the bounding set down to the kept
// ones when the process has CAP_SETPCAP (under systemd the unit's
// CapabilityBoundingSet= does it), and sets no_new_privs so that no
// executed program gains capabilities. It returns the kept set.
func Drop(keep Set) (Set, error) {
	cur := cap.GetProc()
	permitted, err := flag(cur, cap.Permitted)
	if err != nil {
		return nil, err
	}
	var kept Set
	for _, v := range keep {
		if permitted.Has(v) {
			kept = append(kept, v)
		}
	}
	if on, _ := cur.GetFlag(cap.Permitted, cap.SETPCAP); on {
		var drop []cap.Value
		for v := cap.Value(0); v < cap.MaxBits(); v++ {
			if in, err := cap.GetBound(v); err == nil && in && !kept.Has(v) {
				drop = append(drop, v)
			}
		}
		if err := cap.DropBound(drop...); err != nil {
			return nil, fmt.Errorf("dropping the bounding set: %w", err)
		}
	}
	if err := cap.ResetAmbient(); err != nil {
		return nil, fmt.Errorf("clearing the ambient capabilities: %w", err)
	}
	next := cap.NewSet()
	if err := next.SetFlag(cap.Permitted, true, kept...); err != nil {
		return nil, err
	}
	if err := next.SetFlag(cap.Effective, true, kept...); err != nil {
		return nil, err
	}
	if err := next.SetProc(); err != nil {
		return nil, fmt.Errorf("dropping capabilities (keeping %s): %w", kept, err)
	}
	if _, err := cap.Prctlw(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("setting no_new_privs: %w", err)
	}
	return kept, nil
}

// Explain adds to err, when it is a permission error and the process
// lacks some of need, which capabilities it lacks and how to keep them.
// Other errors are returned as they are.
func Explain(err error, need ...cap.Value) error {
	if err == nil || !(errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)) {
		return err
	}
	miss := Missing(need...)
	if len(miss) == 0 {
		return err
	}
	return fmt.Errorf("%w (needs %s, which the daemon does not have: dropped after start-up, keep it with --capabilities.keep, or not given to the daemon)", err, miss)
}
