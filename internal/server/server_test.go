package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kstat/kstat/internal/export"
	"github.com/kstat/kstat/internal/knob"
	"github.com/kstat/kstat/statsfs"
)

var devTable = statsfs.NewTable(
	statsfs.Value{Name: "rx_bytes", Help: "Bytes received.", Type: statsfs.U64, Unit: "bytes", Aggr: statsfs.Sum},
	statsfs.Value{Name: "temp", Help: "Temperature.", Type: statsfs.F64, Unit: "celsius", Flag: statsfs.Floating, Aggr: statsfs.Max},
)

// fixture is a small daemon: kstat/net/dev/{eth0,lo} and a kstat/counter
// knob, served over TCP on a free loopback port.
type fixture struct {
	base    string
	root    *statsfs.Source
	eth, lo *statsfs.Counters
	knobs   *knob.Registry
	counter atomic.Uint64
	mux     *http.ServeMux
	client  *http.Client // over TCP
	socket  string       // the control socket's path
	sclient *http.Client // over the control socket
}

// start starts the fixture's server on TCP and on a control socket in a
// directory of the test; configure may change the configuration first.
func start(t *testing.T, configure ...func(*Config)) *fixture {
	t.Helper()
	f := &fixture{root: statsfs.NewSource("kstat"), knobs: &knob.Registry{}, mux: http.NewServeMux(),
		client: &http.Client{Transport: &http.Transport{}}, socket: filepath.Join(t.TempDir(), "kstat.sock")}
	f.sclient = socketClient(f.socket)
	net := statsfs.NewSource("net")
	dev := statsfs.NewSource("dev")
	if err := dev.AddValues(devTable, nil, 0); err != nil {
		t.Fatal(err)
	}
	f.eth, f.lo = statsfs.NewCounters(devTable), statsfs.NewCounters(devTable)
	for name, c := range map[string]*statsfs.Counters{"eth0": f.eth, "lo": f.lo} {
		s := statsfs.NewInstance("device", name)
		if err := s.AddValues(devTable, c, 0); err != nil {
			t.Fatal(err)
		}
		dev.AddSubordinate(s)
	}
	f.eth.Store(0, 1500)
	f.lo.Store(0, 1<<40+1)
	f.eth.StoreFloat(1, 41.5)
	net.AddSubordinate(dev)
	f.root.AddSubordinate(net)
	ks := statsfs.NewSource("kstat")
	f.root.AddSubordinate(ks)
	f.counter.Store(10)
	k := knob.Uint("counter", "Publish every N packets.", 1, 1000,
		f.counter.Load, func(v uint64) error { f.counter.Store(v); return nil })
	if err := f.knobs.Add("kstat/counter", ks, k); err != nil {
		t.Fatal(err)
	}
	// An aggregate over no instances: its max is -Inf.
	empty := statsfs.NewSource("empty")
	if err := empty.AddValues(devTable, nil, 0); err != nil {
		t.Fatal(err)
	}
	net.AddSubordinate(empty)
	hidden := statsfs.NewSource("secret")
	hidden.SetHidden(true)
	f.root.AddSubordinate(hidden)

	reg := export.NewGatherer(export.New(f.root, export.Options{Version: "test"}))
	cfg := Config{Addr: "127.0.0.1:0", Root: f.root, Knobs: f.knobs, Gatherer: reg, Mux: f.mux, Socket: f.socket}
	for _, c := range configure {
		c(&cfg)
	}
	srv := New(cfg)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		// A connection the client dialed but never used would hold
		// Shutdown for 5s.
		f.client.CloseIdleConnections()
		f.sclient.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	f.base = "http://" + srv.Addr().String()
	return f
}

// socketClient is an HTTP client that dials the control socket at path.
func socketClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// do sends a request over TCP.
func (f *fixture) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	return send(t, f.client, method, f.base+path, body, nil)
}

// sock sends a request over the control socket, as root.
func (f *fixture) sock(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	return send(t, f.sclient, method, "http://kstat"+path, body, nil)
}

// send sends one request with the headers hdr and returns the status and
// the body.
func send(t *testing.T, c *http.Client, method, url, body string, hdr http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if h := hdr.Get("Host"); h != "" {
		req.Host = h
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape fetches /metrics as text, parses it and lints it.
func (f *fixture) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := f.do(t, "GET", "/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing the exposition: %v\n%s", err, body)
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	return mfs
}

func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil {
		t.Fatalf("no family %s", name)
	}
	for _, m := range mf.Metric {
		var got []string
		for _, l := range m.Label {
			got = append(got, l.GetName()+"="+l.GetValue())
		}
		if strings.Join(got, ",") != strings.Join(labels, ",") {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func TestTimeouts(t *testing.T) {
	s := New(Config{Addr: "127.0.0.1:0", Root: statsfs.NewSource("kstat"), Knobs: &knob.Registry{}})
	h := s.tcp
	if h.ReadHeaderTimeout <= 0 || h.ReadTimeout <= 0 || h.WriteTimeout <= 0 || h.IdleTimeout <= 0 || h.MaxHeaderBytes <= 0 {
		t.Errorf("unset limits: ReadHeaderTimeout %v ReadTimeout %v WriteTimeout %v IdleTimeout %v MaxHeaderBytes %d",
			h.ReadHeaderTimeout, h.ReadTimeout, h.WriteTimeout, h.IdleTimeout, h.MaxHeaderBytes)
	}
	if h.ReadHeaderTimeout > h.ReadTimeout {
		t.Errorf("ReadHeaderTimeout %v beyond ReadTimeout %v", h.ReadHeaderTimeout, h.ReadTimeout)
	}
}

// TestSlowHeaders: a client that never finishes its headers is cut off by
// ReadHeaderTimeout (checked on a real socket, with a short timeout).
func TestSlowHeaders(t *testing.T) {
	s := New(Config{Addr: "127.0.0.1:0", Root: statsfs.NewSource("kstat"), Knobs: &knob.Registry{}})
	s.tcp.ReadHeaderTimeout = 200 * time.Millisecond
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve() }()
	defer s.Shutdown(context.Background())
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(c)
	if err != nil {
		t.Fatalf("want the server to close the connection, got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("connection closed after %v", d)
	}
}

func TestMetrics(t *testing.T) {
	f := start(t)
	mfs := f.scrape(t)
	if v := value(t, mfs, "kstat_net_dev_rx_bytes_total", "device=eth0"); v != 1500 {
		t.Errorf("eth0 rx = %v", v)
	}
	if v := value(t, mfs, "kstat_net_dev_rx_bytes_total", "device=lo"); v != 1<<40+1 {
		t.Errorf("lo rx = %v", v)
	}
	// PromQL's sum() gives the total over devices: it is not exported.
	if mfs["kstat_net_dev_sum_rx_bytes_total"] != nil || mfs["kstat_net_dev_all_rx_bytes_total"] != nil {
		t.Error("the sum over devices is exported")
	}
	if v := value(t, mfs, "kstat_net_dev_temp_celsius", "device=eth0"); v != 41.5 {
		t.Errorf("eth0 temp = %v", v)
	}
	if mfs["kstat_net_dev_rx_bytes_total"].GetType() != dto.MetricType_COUNTER || mfs["kstat_net_dev_temp_celsius"].GetType() != dto.MetricType_GAUGE {
		t.Error("wrong metric types")
	}
	for _, want := range []string{"go_goroutines", "process_cpu_seconds_total", "kstat_build_info"} {
		if mfs[want] == nil {
			t.Errorf("no %s", want)
		}
	}
	// Counters only grow across scrapes while the tree's counters grow.
	prev := value(t, mfs, "kstat_net_dev_rx_bytes_total", "device=eth0")
	for i := range 5 {
		f.eth.Add(0, uint64(i))
		mfs = f.scrape(t)
		v := value(t, mfs, "kstat_net_dev_rx_bytes_total", "device=eth0")
		if v < prev {
			t.Fatalf("scrape %d: counter went from %v to %v", i, prev, v)
		}
		prev = v
	}
	if v := value(t, mfs, "kstat_net_dev_rx_bytes_total", "device=eth0"); v != 1500+0+1+2+3+4 {
		t.Errorf("eth0 rx after adds = %v", v)
	}
}

// TestConcurrentScrapes: scrapes in parallel (under -race) all succeed.
func TestConcurrentScrapes(t *testing.T) {
	f := start(t)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			resp, err := f.client.Get(f.base + "/metrics")
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			errs <- err
		}()
		f.eth.Add(0, 1)
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestTree(t *testing.T) {
	f := start(t)
	code, body := f.do(t, "GET", "/api/v1/tree", "")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var root Source
	if err := json.Unmarshal([]byte(body), &root); err != nil {
		t.Fatal(err)
	}
	if root.Name != "kstat" || len(root.Sources) != 2 {
		t.Fatalf("root %s with %d sources, want kstat with net and kstat (secret is hidden)", root.Name, len(root.Sources))
	}
	dev := root.Sources[0].Sources[0]
	if dev.Path != "net/dev" || len(dev.Values) != 2 || dev.Values[0].Aggregate != "sum" || string(dev.Values[0].Value) != "1099511629277" {
		t.Errorf("net/dev = %+v", dev)
	}
	ctl := root.Sources[1].Controls
	if len(ctl) != 1 || ctl[0].Name != "counter" || ctl[0].Text != "10\n" || ctl[0].Mode != "0644" {
		t.Errorf("kstat controls = %+v", ctl)
	}

	code, body = f.do(t, "GET", "/api/v1/tree/net/dev/eth0", "")
	var eth Source
	if err := json.Unmarshal([]byte(body), &eth); err != nil || code != 200 {
		t.Fatalf("%d %s %v", code, body, err)
	}
	want := Value{Name: "rx_bytes", Value: json.RawMessage("1500"), Text: "1500", Type: "u64", Unit: "bytes",
		Flag: "cumulative", Mode: "0644", Help: "Bytes received."}
	if got := eth.Values[0]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("eth0 rx_bytes = %+v, want %+v", got, want)
	}
	if eth.Label != "device" || eth.Labels["device"] != "eth0" || eth.Path != "net/dev/eth0" {
		t.Errorf("eth0 = %+v", eth)
	}
	if eth.Values[1].Flag != "floating" || eth.Values[1].Mode != "0444" || string(eth.Values[1].Value) != "41.5" {
		t.Errorf("eth0 temp = %+v", eth.Values[1])
	}
	code, body = f.do(t, "GET", "/api/v1/tree/net/empty", "")
	var empty Source
	if err := json.Unmarshal([]byte(body), &empty); err != nil || code != 200 {
		t.Fatalf("%d %s %v", code, body, err)
	}
	if v := empty.Values[1]; string(v.Value) != `"-Inf"` || v.Aggregate != "max" {
		t.Errorf("max over nothing = %+v, want the JSON string -Inf", v)
	}
	for _, p := range []string{"/api/v1/tree/nope", "/api/v1/tree/secret", "/api/v1/tree/net/nope"} {
		if code, body := f.do(t, "GET", p, ""); code != 404 || !strings.Contains(body, `"error"`) {
			t.Errorf("GET %s: %d %s, want 404 with an error", p, code, body)
		}
	}
}

func TestKnobs(t *testing.T) {
	f := start(t)
	code, body := f.do(t, "GET", "/api/v1/knobs", "")
	var list []Knob
	if err := json.Unmarshal([]byte(body), &list); err != nil || code != 200 {
		t.Fatalf("%d %s %v", code, body, err)
	}
	if len(list) != 1 || list[0] != (Knob{Name: "kstat/counter", Value: "10", Help: "Publish every N packets."}) {
		t.Errorf("knobs = %+v", list)
	}
	if code, body := f.sock(t, "PUT", "/api/v1/knobs/kstat/counter", "25\n"); code != 200 || !strings.Contains(body, `"value": "25"`) {
		t.Errorf("PUT 25: %d %s", code, body)
	}
	if f.counter.Load() != 25 {
		t.Errorf("counter = %d after PUT 25", f.counter.Load())
	}
	if code, body := f.do(t, "GET", "/api/v1/knobs/kstat/counter", ""); code != 200 || !strings.Contains(body, `"value": "25"`) {
		t.Errorf("GET: %d %s", code, body)
	}
	// The control file of the same knob, written as FUSE writes it.
	ctl := f.root.Find("kstat").Control("counter")
	for _, bad := range []string{"0", "1001", "ten", "-1", "", "5 5"} {
		fileErr := ctl.Write(bad)
		if !errors.Is(fileErr, statsfs.ErrInvalid) {
			t.Fatalf("control write %q: %v, want ErrInvalid", bad, fileErr)
		}
		code, body := f.sock(t, "PUT", "/api/v1/knobs/kstat/counter", bad)
		var e Error
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			t.Fatalf("PUT %q: %s: %v", bad, body, err)
		}
		if code != http.StatusBadRequest || e.Error != fileErr.Error() {
			t.Errorf("PUT %q: %d %q, want 400 %q", bad, code, e.Error, fileErr)
		}
		if f.counter.Load() != 25 {
			t.Errorf("counter = %d after bad PUT %q, want 25 kept", f.counter.Load(), bad)
		}
	}
	if code, _ := f.sock(t, "PUT", "/api/v1/knobs/kstat/nope", "1"); code != 404 {
		t.Errorf("PUT unknown knob: %d, want 404", code)
	}
	if code, _ := f.do(t, "GET", "/api/v1/knobs/nope", ""); code != 404 {
		t.Errorf("GET unknown knob: %d, want 404", code)
	}
	if code, body := f.sock(t, "PUT", "/api/v1/knobs/kstat/counter", strings.Repeat("1", MaxBodyBytes+1)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("PUT of %d bytes: %d %s, want 413", MaxBodyBytes+1, code, body)
	}
	if code, _ := f.sock(t, "PUT", "/api/v1/knobs/kstat/counter", strings.Repeat(" ", MaxBodyBytes-3)+"30"); code != 200 || f.counter.Load() != 30 {
		t.Errorf("PUT of a body just under the limit: %d, counter %d", code, f.counter.Load())
	}
	if code, _ := f.sock(t, "POST", "/api/v1/knobs/kstat/counter", "1"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", code)
	}
}

func TestHealthAndSharedMux(t *testing.T) {
	f := start(t)
	if code, body := f.do(t, "GET", "/healthz", ""); code != 200 || body != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
	// A handler another feature adds after the server started is served.
	f.mux.HandleFunc("GET /api/v1/snapshots", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("[]"))
	})
	if code, body := f.do(t, "GET", "/api/v1/snapshots", ""); code != 200 || body != "[]" {
		t.Errorf("feature handler: %d %q", code, body)
	}
}

func TestAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := New(Config{Addr: ln.Addr().String(), Root: statsfs.NewSource("kstat"), Knobs: &knob.Registry{}})
	err = s.Listen()
	if err == nil || !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("listen on a used port: %v", err)
	}
}
