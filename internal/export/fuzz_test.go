package export

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/kstat/kstat/statsfs"
)

// FuzzSanitize: any text gives a name piece of [a-z0-9_] without leading,
// trailing or doubled underscores, and sanitizing it again changes nothing.
func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"MemTotal", "Active(anon)", "eth0.100", "__x__", "", "ÄÖ", "a__b", "TCPv6"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := sanitize(s)
		for _, c := range got {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				t.Fatalf("sanitize(%q) = %q has %q", s, got, c)
			}
		}
		if strings.HasPrefix(got, "_") || strings.HasSuffix(got, "_") || strings.Contains(got, "__") {
			t.Fatalf("sanitize(%q) = %q", s, got)
		}
		if again := sanitize(got); again != got {
			t.Fatalf("sanitize(%q) = %q, then %q", s, got, again)
		}
		if l := labelName(s); !model.LegacyValidation.IsValidLabelName(l) || strings.HasPrefix(l, "__") {
			t.Fatalf("labelName(%q) = %q is not a valid label name", s, l)
		}
	})
}

// FuzzCollect: whatever the source names, instance keys and values, the
// scrape gathers without error (valid, unique names and label sets).
func FuzzCollect(f *testing.F) {
	f.Add("net", "dev", "device", "eth0", "rx_bytes", "bytes", "dev", "lo")
	f.Add("a.b", "a_b", "pid", "1", "x", "", "pid", "1")
	f.Add("", "0", "__name__", "\xff", "X-y", "kB", "le", "")
	f.Fuzz(func(t *testing.T, dir, sub, key, inst, value, unit, key2, inst2 string) {
		if value == "" {
			value = "v"
		}
		tc := statsfs.NewTable(statsfs.Value{Name: value, Help: "c", Type: statsfs.U64, Unit: unit, Aggr: statsfs.Sum})
		tg := statsfs.NewTable(statsfs.Value{Name: value, Help: "g", Type: statsfs.S8, Unit: unit, Flag: statsfs.Floating, Aggr: statsfs.Avg})
		root := statsfs.NewSource("kstat")
		a := statsfs.NewSource("%s", dir)
		b := statsfs.NewSource("%s", sub)
		root.AddSubordinate(a)
		a.AddSubordinate(b)
		for _, tb := range []*statsfs.Table{tc, tg} {
			for _, s := range []*statsfs.Source{a, b} {
				if err := s.AddValues(tb, nil, 0); err != nil {
					t.Fatal(err)
				}
			}
		}
		i1 := statsfs.NewInstance(key, inst)
		i2 := statsfs.NewInstance(key2, inst2)
		b.AddSubordinate(i1)
		i1.AddSubordinate(i2)
		a.AddSubordinate(statsfs.NewInstance(key2, inst))
		for _, s := range []*statsfs.Source{i1, i2, a, b} {
			for _, tb := range []*statsfs.Table{tc, tg} {
				if err := s.AddValues(tb, statsfs.NewCounters(tb), 0); err != nil {
					t.Fatal(err)
				}
			}
		}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(New(root, Options{MaxPids: 1}))
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("gather: %v", err)
		}
		for _, mf := range mfs {
			if !model.LegacyValidation.IsValidMetricName(mf.GetName()) {
				t.Fatalf("invalid metric name %q", mf.GetName())
			}
			for _, m := range mf.Metric {
				for _, l := range m.Label {
					if !model.LegacyValidation.IsValidLabelName(l.GetName()) {
						t.Fatalf("invalid label name %q in %s", l.GetName(), mf.GetName())
					}
				}
			}
		}
	})
}
