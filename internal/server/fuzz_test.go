package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kstat/kstat/internal/export"
	"github.com/kstat/kstat/internal/knob"
	"github.com/kstat/kstat/statsfs"
)

// fuzzServer is a server with one knob (kstat/counter, 1 to 1000) and a
// clearable counter (kstat/packets), served in process.
func fuzzServer(tb testing.TB) (*Server, *atomic.Uint64, *statsfs.Counters) {
	root := statsfs.NewSource("kstat")
	ks := statsfs.NewSource("kstat")
	root.AddSubordinate(ks)
	tbl := statsfs.NewTable(statsfs.Value{Name: "packets", Type: statsfs.U64, Aggr: statsfs.Sum})
	cnt := statsfs.NewCounters(tbl)
	cnt.Store(0, 99)
	if err := ks.AddValues(tbl, cnt, 0); err != nil {
		tb.Fatal(err)
	}
	var counter atomic.Uint64
	counter.Store(10)
	reg := &knob.Registry{}
	if err := reg.Add("kstat/counter", ks, knob.Uint("counter", "", 1, 1000, counter.Load,
		func(v uint64) error { counter.Store(v); return nil })); err != nil {
		tb.Fatal(err)
	}
	s := New(Config{Root: root, Knobs: reg, Gatherer: export.NewGatherer(export.New(root, export.Options{}))})
	return s, &counter, cnt
}

// FuzzRequest sends arbitrary methods, paths, headers and bodies: nothing
// panics; over plain HTTP nothing changes; over the socket (as root) the
// knob only ever holds a valid setting and the counter is 99 or cleared.
func FuzzRequest(f *testing.F) {
	f.Add("PUT", "/api/v1/knobs/kstat/counter", "127.0.0.1:9090", "", "", "25")
	f.Add("PUT", "/api/v1/values/kstat/packets", "localhost", "http://localhost", "Basic d3JpdGVyOng=", "0")
	f.Add("GET", "/api/v1/tree/kstat/../..", "attacker.example", "null", "", "")
	f.Add("POST", "/api/v1/knobs/kstat%2fcounter", "[::1]:80", "https://evil", "Basic !!!", "1e3")
	f.Add("DELETE", "//api/v1/values/kstat/packets/", "", "", "", "0x0")
	f.Add("GET", "/api/v1/values/kstat/packets?x=1#y", "127.0.0.1", "", "", "")
	s, counter, cnt := fuzzServer(f)
	sock := s.sock.Handler // the peer (root) is put in the context below
	f.Fuzz(func(t *testing.T, method, path, host, origin, auth, body string) {
		req, err := http.NewRequest(method, "http://kstat"+path, strings.NewReader(body))
		if err != nil || !strings.HasPrefix(path, "/") {
			return
		}
		req.Host = host
		req.RemoteAddr = "127.0.0.1:1234"
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		counter.Store(10)
		cnt.Store(0, 99)
		w := httptest.NewRecorder()
		s.tcp.Handler.ServeHTTP(w, req)
		if isWrite(method) && w.Code/100 == 2 {
			t.Fatalf("%s %s over plain HTTP: %d", method, path, w.Code)
		}
		if counter.Load() != 10 || cnt.Load(0) != 99 {
			t.Fatalf("%s %s over plain HTTP changed state: counter %d, packets %d", method, path, counter.Load(), cnt.Load(0))
		}

		req2, _ := http.NewRequest(method, "http://kstat"+path, strings.NewReader(body))
		req2 = req2.WithContext(context.WithValue(req2.Context(), peerKey{}, peer{pid: 1}))
		w = httptest.NewRecorder()
		sock.ServeHTTP(w, req2)
		if v := counter.Load(); v < 1 || v > 1000 {
			t.Fatalf("%s %s %q over the socket: counter %d", method, path, body, v)
		}
		if p := cnt.Load(0); p != 99 && p != 0 {
			t.Fatalf("%s %s %q over the socket: packets %d", method, path, body, p)
		}
		if w.Code == http.StatusOK && method == http.MethodPut && strings.Contains(path, "knobs/kstat/counter") {
			if n, err := strconv.ParseUint(strings.TrimSpace(body), 10, 64); err != nil || n != counter.Load() {
				t.Fatalf("PUT %q answered 200, counter %d", body, counter.Load())
			}
		}
	})
}

// FuzzWebConfig parses arbitrary web config files: no panic, and a file
// that parses can be checked against write users without a panic.
func FuzzWebConfig(f *testing.F) {
	for _, s := range []string{
		"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  alice: $2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n",
		"basic_auth_users:\n  bob: x\n",
		"http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
		"rate_limit:\n  burst: 1\n  interval: 1s\n",
		"tls_server_config: [\n",
		"unknown_key: 1\n",
		"",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseWebConfig(b)
		if err != nil {
			return
		}
		path := filepath.Join(dir, "web.yml")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		var users []string
		for u := range c.Users {
			users = append(users, u)
		}
		_ = checkWebConfig(path, users)
	})
}
