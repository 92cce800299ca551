package server

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kstat/kstat/internal/export"
	"github.com/kstat/kstat/internal/knob"
	"github.com/kstat/kstat/statsfs"
)

// BenchmarkMetricsHandler is one /metrics request served in process (text
// format, no compression): the exporter over a tree of 32 devices of 2
// values with their aggregates, plus the Go and process collectors.
func BenchmarkMetricsHandler(b *testing.B) {
	root := statsfs.NewSource("kstat")
	dev := statsfs.NewSource("dev")
	if err := dev.AddValues(devTable, nil, 0); err != nil {
		b.Fatal(err)
	}
	for i := range 32 {
		s := statsfs.NewInstance("device", fmt.Sprintf("eth%d", i))
		c := statsfs.NewCounters(devTable)
		c.Store(0, uint64(i)*1e6)
		if err := s.AddValues(devTable, c, 0); err != nil {
			b.Fatal(err)
		}
		dev.AddSubordinate(s)
	}
	root.AddSubordinate(dev)
	reg := export.NewGatherer(export.New(root, export.Options{}))
	h := New(Config{Root: root, Knobs: &knob.Registry{}, Gatherer: reg}).tcp.Handler
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
		_, _ = io.Copy(io.Discard, w.Body)
	}
}
