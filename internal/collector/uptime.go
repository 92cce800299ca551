package collector

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kstat/kstat/statsfs"
)

func init() {
	Register(Info{Name: "uptime", Default: true,
		Help: "seconds since boot and idle seconds from /proc/uptime into system/"},
		func(cfg Config) (Collector, error) { return newUptime(cfg.Paths, Child(cfg.Root, "system")) })
}

// Uptime is /proc/uptime: seconds since boot and idle seconds summed over
// CPUs.
type Uptime struct {
	Up, Idle float64
}

// ParseUptime reads the text of /proc/uptime.
func ParseUptime(b []byte) (Uptime, error) {
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return Uptime{}, fmt.Errorf("%w: uptime: want 2 fields, got %d", ErrMalformed, len(f))
	}
	var u Uptime
	var err error
	if u.Up, err = parseSeconds(f[0]); err != nil {
		return Uptime{}, fmt.Errorf("%w: uptime: %v", ErrMalformed, err)
	}
	if u.Idle, err = parseSeconds(f[1]); err != nil {
		return Uptime{}, fmt.Errorf("%w: uptime: idle: %v", ErrMalformed, err)
	}
	return u, nil
}

// parseSeconds reads a non-negative decimal number of seconds.
func parseSeconds(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v != v || v > 1e300 {
		return 0, fmt.Errorf("%q is not a number of seconds", s)
	}
	return v, nil
}

// uptimeTable is what the "uptime" collector adds to system/.
var uptimeTable = statsfs.NewTable(
	statsfs.Value{Name: "uptime_seconds", Type: statsfs.F64, Unit: "seconds", Flag: statsfs.Floating,
		Help: "Time since boot (/proc/uptime)."},
	statsfs.Value{Name: "idle_seconds", Type: statsfs.F64, Unit: "seconds", ReadOnly: true,
		Help: "Idle time since boot, summed over CPUs (/proc/uptime)."},
)

// newUptime adds the "uptime" collector's values to src (normally
// system/), read from p.Proc/uptime at most once per MaxAge. Call Refresh
// on the result to learn whether the file can be read.
func newUptime(p Paths, src *statsfs.Source) (*Refresher, error) {
	c := statsfs.NewCounters(uptimeTable)
	path := filepath.Join(p.Proc, "uptime")
	var buf []byte // reused by each read
	r := NewRefresher("uptime", func() error {
		var err error
		if buf, err = ReadFile(path, buf); err != nil {
			return err
		}
		u, err := ParseUptime(buf)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		c.StoreFloat(0, u.Up)
		c.StoreFloat(1, u.Idle)
		return nil
	})
	return r, src.AddValues(uptimeTable, r.Record(c), 0)
}
