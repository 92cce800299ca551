package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
)

// Every operation of the OpenAPI description served at /api/v1/ answers on
// a real daemon: GETs with 200, PUTs of a bad value with 400 (so the route
// exists and nothing changes).
func TestOpenAPIServed(t *testing.T) {
	d, base := startHTTPDaemon(t)
	code, body := httpDo(t, "GET", base+"/api/v1/", "")
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || code != http.StatusOK || doc.OpenAPI == "" {
		t.Fatalf("GET /api/v1/: %d %v\n%.300s", code, err, body)
	}
	example := strings.NewReplacer("/api/v1/tree/{path}", "/api/v1/tree/self",
		"/api/v1/values/{path}", "/api/v1/values/kstat/counter",
		"/api/v1/knobs/{name}", "/api/v1/knobs/kstat/counter")
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.Socket)
		},
	}}
	defer c.CloseIdleConnections()
	n := 0
	for tmpl, item := range doc.Paths {
		p := example.Replace(tmpl)
		if strings.Contains(p, "{") {
			t.Errorf("no example for %s", tmpl)
			continue
		}
		for m := range item {
			want, body := http.StatusOK, ""
			switch m {
			case "get":
			case "put":
				want, body = http.StatusBadRequest, "not a setting!"
			default:
				continue
			}
			n++
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, strings.ToUpper(m), "http://kstat"+p, strings.NewReader(body))
			resp, err := c.Do(req) // returns at the headers: an event stream is not read
			if err != nil {
				cancel()
				t.Fatalf("%s %s: %v", m, p, err)
			}
			resp.Body.Close()
			cancel()
			if resp.StatusCode != want {
				t.Errorf("%s %s (from %s): %d, want %d", strings.ToUpper(m), p, tmpl, resp.StatusCode, want)
			}
		}
	}
	if n < 12 {
		t.Errorf("only %d operations in the description", n)
	}
}
