package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/kstat/kstat/internal/testutil"
)

// access asks GET /api/v1/access with c at base.
func getAccess(t *testing.T, c *http.Client, url string) Access {
	t.Helper()
	code, body := send(t, c, "GET", url+"/api/v1/access", "", nil)
	var a Access
	if err := json.Unmarshal([]byte(body), &a); err != nil || code != http.StatusOK {
		t.Fatalf("GET /api/v1/access: %d %s %v", code, body, err)
	}
	return a
}

// By default HTTP is read-only: every write method is refused with 403 and
// a hint, reads work, and the knob keeps its value; the control socket
// may write.
func TestReadOnlyByDefault(t *testing.T) {
	f := start(t)
	for _, m := range []string{"PUT", "POST", "DELETE", "PATCH"} {
		for _, p := range []string{"/api/v1/knobs/kstat/counter", "/api/v1/values/kstat/counter", "/", "/no/such"} {
			code, body := f.do(t, m, p, "25")
			if code != http.StatusForbidden || !strings.Contains(body, "--web.config.file") || !strings.Contains(body, f.socket) {
				t.Errorf("%s %s over HTTP: %d %s, want 403 saying how to enable control", m, p, code, body)
			}
		}
	}
	if f.counter.Load() != 10 {
		t.Errorf("counter = %d after refused PUTs, want 10", f.counter.Load())
	}
	if code, _ := f.do(t, "GET", "/api/v1/knobs/kstat/counter", ""); code != http.StatusOK {
		t.Errorf("GET over HTTP: %d", code)
	}
	if a := getAccess(t, f.client, f.base); a.Write || a.Via != "http" || !strings.Contains(a.Hint, "--web.write-users") {
		t.Errorf("HTTP access = %+v", a)
	}
	if a := getAccess(t, f.sclient, "http://kstat"); !a.Write || a.Via != "socket" || a.User != "uid 0" {
		t.Errorf("socket access = %+v", a)
	}
	if code, body := f.sock(t, "PUT", "/api/v1/knobs/kstat/counter", "25"); code != http.StatusOK || f.counter.Load() != 25 {
		t.Errorf("PUT over the socket: %d %s, counter %d", code, body, f.counter.Load())
	}
}

// With TLS and basic auth, a user named in WriteUsers may write, another
// user may only read, a wrong password gets 401; a write whose Host or
// Origin is not the server's own is refused even for the writer.
func TestTLSBasicAuth(t *testing.T) {
	testutil.RequireRoot(t) // the fixture's control socket checks peers as root
	wc := testutil.NewWebConfig(t, map[string]string{"alice": "wonderland", "bob": "builder"}, true)
	f := start(t, func(c *Config) {
		c.WebConfigFile = wc.Path
		c.WriteUsers = []string{"alice"}
	})
	base := strings.Replace(f.base, "http://", "https://", 1)
	alice, bob, anon := wc.Client("alice"), wc.Client("bob"), wc.Client("")
	t.Cleanup(func() {
		for _, c := range []*http.Client{alice, bob, anon} {
			c.CloseIdleConnections()
		}
	})

	if code, body := send(t, alice, "PUT", base+"/api/v1/knobs/kstat/counter", "42", nil); code != http.StatusOK || f.counter.Load() != 42 {
		t.Fatalf("alice's PUT: %d %s, counter %d", code, body, f.counter.Load())
	}
	if a := getAccess(t, alice, base); !a.Write || a.User != "alice" || a.Via != "https" {
		t.Errorf("alice's access = %+v", a)
	}
	if code, body := send(t, bob, "PUT", base+"/api/v1/knobs/kstat/counter", "7", nil); code != http.StatusForbidden || !strings.Contains(body, "--web.write-users") {
		t.Errorf("bob's PUT: %d %s, want 403", code, body)
	}
	if a := getAccess(t, bob, base); a.Write || a.User != "bob" {
		t.Errorf("bob's access = %+v", a)
	}
	if code, _ := send(t, bob, "GET", base+"/api/v1/knobs/kstat/counter", "", nil); code != http.StatusOK {
		t.Errorf("bob's GET: %d", code)
	}
	if code, _ := send(t, anon, "GET", base+"/api/v1/knobs/kstat/counter", "", nil); code != http.StatusUnauthorized {
		t.Errorf("GET without a password: %d, want 401", code)
	}
	wrong := &http.Client{Transport: anon.Transport}
	req, _ := http.NewRequest("PUT", base+"/api/v1/knobs/kstat/counter", strings.NewReader("8"))
	req.SetBasicAuth("alice", "rabbit")
	if resp, err := wrong.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("alice with a wrong password: %v %v, want 401", resp, err)
	} else {
		resp.Body.Close()
	}
	// Plain HTTP to the TLS listener does not get through.
	if resp, err := f.client.Get(f.base + "/api/v1/knobs"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS listener: %d, want 400", resp.StatusCode)
		}
	}

	for _, h := range []http.Header{
		{"Host": {"attacker.example"}},
		{"Host": {"attacker.example:443"}},
		{"Origin": {"http://attacker.example"}},
		{"Origin": {"null"}},
		{"Host": {"127.0.0.1.nip.io"}},
	} {
		code, body := send(t, alice, "PUT", base+"/api/v1/knobs/kstat/counter", "9", h)
		if code != http.StatusForbidden || f.counter.Load() != 42 {
			t.Errorf("alice's PUT with %v: %d %s, counter %d; want 403 and 42 kept", h, code, body, f.counter.Load())
		}
	}
	for _, h := range []http.Header{
		{"Host": {"localhost"}},
		{"Origin": {base}},
		{"Origin": {"https://localhost:1234"}},
	} {
		if code, body := send(t, alice, "PUT", base+"/api/v1/knobs/kstat/counter", "43", h); code != http.StatusOK {
			t.Errorf("alice's PUT with %v: %d %s, want 200", h, code, body)
		}
	}
	// Reads do not care about the Host.
	if code, _ := send(t, bob, "GET", base+"/api/v1/knobs", "", http.Header{"Host": {"attacker.example"}}); code != http.StatusOK {
		t.Errorf("GET with a foreign Host: %d, want 200", code)
	}
}

// Basic auth without TLS does not allow writes: the password would travel
// in the clear.
func TestBasicAuthWithoutTLS(t *testing.T) {
	wc := testutil.NewWebConfig(t, map[string]string{"alice": "wonderland"}, false)
	f := start(t, func(c *Config) {
		c.WebConfigFile = wc.Path
		c.WriteUsers = []string{"alice"}
	})
	alice := wc.Client("alice")
	code, body := send(t, alice, "PUT", f.base+"/api/v1/knobs/kstat/counter", "42", nil)
	if code != http.StatusForbidden || !strings.Contains(body, "TLS") || f.counter.Load() != 10 {
		t.Errorf("PUT with basic auth over plain HTTP: %d %s, counter %d", code, body, f.counter.Load())
	}
}

// A bad web config or a write user it lacks stops the server at Listen.
func TestWebConfigChecked(t *testing.T) {
	wc := testutil.NewWebConfig(t, map[string]string{"alice": "wonderland"}, true)
	for name, cfg := range map[string]Config{
		"unknown write user":   {WebConfigFile: wc.Path, WriteUsers: []string{"mallory"}},
		"write users, no file": {WriteUsers: []string{"alice"}},
		"missing file":         {WebConfigFile: wc.Path + ".missing"},
	} {
		cfg.Addr = "127.0.0.1:0"
		if err := New(cfg).Listen(); err == nil {
			t.Errorf("%s: Listen succeeded", name)
		}
	}
}
