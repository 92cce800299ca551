package collector

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kstat/kstat/statsfs"
)

func init() {
	Register(Info{Name: "loadavg", Default: true,
		Help: "load averages from /proc/loadavg into system/"},
		func(cfg Config) (Collector, error) { return newLoadavg(cfg.Paths, Child(cfg.Root, "system")) })
}

// Loadavg is /proc/loadavg's load averages over 1, 5 and 15 minutes.
type Loadavg struct {
	Load1, Load5, Load15 float64
}

// ParseLoadavg reads the text of /proc/loadavg.
func ParseLoadavg(b []byte) (Loadavg, error) {
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return Loadavg{}, fmt.Errorf("%w: loadavg: want at least 3 fields, got %d", ErrMalformed, len(f))
	}
	var l Loadavg
	for i, dst := range []*float64{&l.Load1, &l.Load5, &l.Load15} {
		v, err := parseSeconds(f[i])
		if err != nil {
			return Loadavg{}, fmt.Errorf("%w: loadavg: field %d: %q is not a load average", ErrMalformed, i+1, f[i])
		}
		*dst = v
	}
	return l, nil
}

var loadavgTable = statsfs.NewTable(
	statsfs.Value{Name: "load1", Type: statsfs.F64, Flag: statsfs.Floating,
		Help: "Load average over 1 minute (/proc/loadavg)."},
	statsfs.Value{Name: "load5", Type: statsfs.F64, Flag: statsfs.Floating,
		Help: "Load average over 5 minutes (/proc/loadavg)."},
	statsfs.Value{Name: "load15", Type: statsfs.F64, Flag: statsfs.Floating,
		Help: "Load average over 15 minutes (/proc/loadavg)."},
)

// newLoadavg adds the "loadavg" collector's values to src (normally
// system/), read from p.Proc/loadavg at most once per MaxAge.
func newLoadavg(p Paths, src *statsfs.Source) (*Refresher, error) {
	c := statsfs.NewCounters(loadavgTable)
	path := filepath.Join(p.Proc, "loadavg")
	var buf []byte // reused by each read
	r := NewRefresher("loadavg", func() error {
		var err error
		if buf, err = ReadFile(path, buf); err != nil {
			return err
		}
		l, err := ParseLoadavg(buf)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		c.StoreFloat(0, l.Load1)
		c.StoreFloat(1, l.Load5)
		c.StoreFloat(2, l.Load15)
		return nil
	})
	return r, src.AddValues(loadavgTable, r.Record(c), 0)
}
