package collector

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kstat/kstat/statsfs"
)

func init() {
	Register(Info{Name: NameUptime, Default: true,
		Help: "seconds since boot and idle seconds from /proc/uptime into system/"},
		func(cfg Config) (Collector, error) { return newUptime(cfg.Paths, Child(cfg.Root, DirSystem)) })
}

// Uptime is /proc/uptime: seconds since boot and idle seconds summed over
// CPUs.
type Uptime struct {
	Up, Idle float64
	// Have has bit 0 set when Up was read and bit 1 when Idle was; the
	// others are absent.
	Have uint8
}

// ParseUptime reads the text of /proc/uptime. A field that is missing (a
// truncated line) or not a number of seconds is left out of Have, and the
// line is counted in the *Skipped it returns; the other field is kept.
func ParseUptime(b []byte) (Uptime, error) {
	f := strings.Fields(string(b))
	var u Uptime
	var bad []string
	for i, dst := range []*float64{&u.Up, &u.Idle} {
		if i >= len(f) {
			bad = append(bad, fmt.Sprintf("no field %d", i+1))
			continue
		}
		v, err := parseSeconds(f[i])
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		*dst = v
		u.Have |= 1 << i
	}
	if len(bad) > 0 {
		return u, &Skipped{Lines: 1, First: fmt.Errorf("%w: uptime: %s", ErrMalformed, strings.Join(bad, ", "))}
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
	statsfs.Value{Name: SystemUptimeSeconds, Type: statsfs.F64, Unit: "seconds", Flag: statsfs.Floating,
		Help: "Time since boot (/proc/uptime)."},
	statsfs.Value{Name: SystemIdleSeconds, Type: statsfs.F64, Unit: "seconds", ReadOnly: true,
		Help: "Idle time since boot, summed over CPUs (/proc/uptime)."},
)

// newUptime adds the "uptime" collector's values to src (normally
// system/), read from p.Proc/uptime at most once per MaxAge. Call Refresh
// on the result to learn whether the file can be read.
func newUptime(p Paths, src *statsfs.Source) (*Refresher, error) {
	c := statsfs.NewCounters(uptimeTable)
	path := filepath.Join(p.Proc, "uptime")
	var buf []byte // reused by each read
	r := NewRefresher(NameUptime, func() error {
		var err error
		if buf, err = ReadFile(path, buf); err != nil {
			return err
		}
		u, err := ParseUptime(buf)
		storeFloats(c, u.Have, u.Up, u.Idle)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
	return r, src.AddValues(uptimeTable, r.Record(c), 0)
}
