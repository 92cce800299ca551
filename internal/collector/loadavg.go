package collector

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kstat/kstat/statsfs"
)

func init() {
	Register(Info{Name: NameLoadavg, Default: true,
		Help: "load averages from /proc/loadavg into system/"},
		func(cfg Config) (Collector, error) { return newLoadavg(cfg.Paths, Child(cfg.Root, DirSystem)) })
}

// Loadavg is /proc/loadavg's load averages over 1, 5 and 15 minutes.
type Loadavg struct {
	Load1, Load5, Load15 float64
	// Have has bit i set when the i-th average (Load1, Load5, Load15)
	// was read; the others are absent.
	Have uint8
}

// ParseLoadavg reads the text of /proc/loadavg. A field that is missing
// (a truncated line) or not a load average is left out of Have, and the
// line is counted in the *Skipped it returns; the other fields are kept.
func ParseLoadavg(b []byte) (Loadavg, error) {
	f := strings.Fields(string(b))
	var l Loadavg
	var bad []string
	for i, dst := range []*float64{&l.Load1, &l.Load5, &l.Load15} {
		if i >= len(f) {
			bad = append(bad, fmt.Sprintf("no field %d", i+1))
			continue
		}
		v, err := parseSeconds(f[i])
		if err != nil {
			bad = append(bad, fmt.Sprintf("field %d: %q is not a load average", i+1, f[i]))
			continue
		}
		*dst = v
		l.Have |= 1 << i
	}
	if len(bad) > 0 {
		return l, &Skipped{Lines: 1, First: fmt.Errorf("%w: loadavg: %s", ErrMalformed, strings.Join(bad, ", "))}
	}
	return l, nil
}

var loadavgTable = statsfs.NewTable(
	statsfs.Value{Name: SystemLoad1, Type: statsfs.F64, Flag: statsfs.Floating,
		Help: "Load average over 1 minute (/proc/loadavg)."},
	statsfs.Value{Name: SystemLoad5, Type: statsfs.F64, Flag: statsfs.Floating,
		Help: "Load average over 5 minutes (/proc/loadavg)."},
	statsfs.Value{Name: SystemLoad15, Type: statsfs.F64, Flag: statsfs.Floating,
		Help: "Load average over 15 minutes (/proc/loadavg)."},
)

// newLoadavg adds the "loadavg" collector's values to src (normally
// system/), read from p.Proc/loadavg at most once per MaxAge.
func newLoadavg(p Paths, src *statsfs.Source) (*Refresher, error) {
	c := statsfs.NewCounters(loadavgTable)
	path := filepath.Join(p.Proc, "loadavg")
	var buf []byte // reused by each read
	r := NewRefresher(NameLoadavg, func() error {
		var err error
		if buf, err = ReadFile(path, buf); err != nil {
			return err
		}
		l, err := ParseLoadavg(buf)
		storeFloats(c, l.Have, l.Load1, l.Load5, l.Load15)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
	return r, src.AddValues(loadavgTable, r.Record(c), 0)
}

// storeFloats stores vs in c's first cells, those whose bit is set in have,
// and marks the others absent.
func storeFloats(c *statsfs.Counters, have uint8, vs ...float64) {
	for i, v := range vs {
		if have&(1<<i) != 0 {
			c.StoreFloat(i, v)
		} else {
			c.SetAbsent(i)
		}
	}
}
