package main

// Tests of who may change the daemon's settings: HTTP is read-only by
// default, HTTPS writers and root (or a named group) on the control socket
// may write. Every refusal is checked against the mount, read by the
// test: the knob keeps its value.

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
)

// A user of the machine (uid 65534) cannot change a knob over HTTP or the
// control socket; root on the socket and the HTTPS writer can.
func TestControlAuthorization(t *testing.T) {
	d, base, writer := startWriterDaemon(t)
	before := readText(t, d.Path("kstat/counter"))

	// uid 65534 on the socket (mode 0600): the connection is refused.
	if code, body := peerDo(t, 65534, 65534, "PUT", "unix:"+d.Socket+":/api/v1/knobs/kstat/counter", "25"); code != 0 || !strings.Contains(body, "permission denied") {
		t.Errorf("uid 65534's PUT on the 0600 socket: %d %s, want the connection refused", code, body)
	}
	// Opened to everyone, the socket still refuses a non-root peer
	// (SO_PEERCRED).
	if err := os.Chmod(d.Socket, 0o666); err != nil {
		t.Fatal(err)
	}
	code, body := peerDo(t, 65534, 65534, "PUT", "unix:"+d.Socket+":/api/v1/knobs/kstat/counter", "25")
	if code != http.StatusForbidden || !strings.Contains(body, "uid 65534") {
		t.Errorf("uid 65534's PUT on a 0666 socket: %d %s, want 403 naming the uid", code, body)
	}
	if code, _ := peerDo(t, 65534, 65534, "GET", "unix:"+d.Socket+":/api/v1/knobs", ""); code != http.StatusForbidden {
		t.Errorf("uid 65534's GET on the socket: %d, want 403", code)
	}
	if got := readText(t, d.Path("kstat/counter")); got != before {
		t.Fatalf("kstat/counter reads %q after the refused writes, want %q kept", got, before)
	}

	// A foreign Host or Origin is refused even for the writer.
	for _, h := range []http.Header{{"Host": {"attacker.example"}}, {"Origin": {"http://attacker.example"}}} {
		req, _ := http.NewRequest("PUT", base+"/api/v1/knobs/kstat/counter", strings.NewReader("26"))
		for k, v := range h {
			req.Header[k] = v
		}
		if hs := h.Get("Host"); hs != "" {
			req.Host = hs
		}
		resp, err := writer.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("the writer's PUT with %v: %d, want 403", h, resp.StatusCode)
		}
	}
	if got := readText(t, d.Path("kstat/counter")); got != before {
		t.Fatalf("kstat/counter reads %q after a foreign Host's write, want %q kept", got, before)
	}

	// The writer over HTTPS, then root on the socket.
	if code, body := httpDo(t, "PUT", base+"/api/v1/knobs/kstat/counter", "27"); code != http.StatusOK {
		t.Fatalf("the writer's PUT: %d %s", code, body)
	}
	if got := readText(t, d.Path("kstat/counter")); got != "27\n" {
		t.Errorf("kstat/counter reads %q after the writer's PUT 27", got)
	}
	if code, body := d.SocketDo(t, "PUT", "/api/v1/knobs/kstat/counter", "28"); code != http.StatusOK {
		t.Fatalf("root's PUT on the socket: %d %s", code, body)
	}
	if got := readText(t, d.Path("kstat/counter")); got != "28\n" {
		t.Errorf("kstat/counter reads %q after root's PUT 28", got)
	}
	// Every change is logged with who made it.
	for _, want := range []string{`via="https user writer`, `via="socket uid 0`} {
		if !strings.Contains(d.Stderr(), want) {
			t.Errorf("the log has no setting change %s:\n%s", want, d.Stderr())
		}
	}
	var a struct {
		Write bool
		User  string
	}
	_, ab := httpDo(t, "GET", base+"/api/v1/access", "")
	if err := json.Unmarshal([]byte(ab), &a); err != nil || !a.Write || a.User != "writer" {
		t.Errorf("the writer's access: %s %v", ab, err)
	}
}

// Plain HTTP is read-only by default: uid 65534's PUT gets 403 with the
// way to enable control, and the knob keeps its value.
func TestControlReadOnlyHTTP(t *testing.T) {
	d, base := startHTTPDaemon(t)
	before := readText(t, d.Path("telemetry/enable"))
	for _, k := range []string{"telemetry/enable", "tracer/enable"} {
		code, body := peerDo(t, 65534, 65534, "PUT", base+"/api/v1/knobs/"+k, "1")
		if code != http.StatusForbidden || !strings.Contains(body, "--web.config.file") || !strings.Contains(body, d.Socket) {
			t.Errorf("uid 65534's PUT %s: %d %s, want 403 saying how to enable control", k, code, body)
		}
	}
	if got := readText(t, d.Path("telemetry/enable")); got != before {
		t.Errorf("telemetry/enable reads %q after the refused PUT, want %q", got, before)
	}
	if got := readText(t, d.Path("tracer/enable")); got != "0\n" {
		t.Errorf("tracer/enable reads %q after the refused PUT, want 0", got)
	}
	if !strings.Contains(d.Stderr(), "write refused: not authorized") {
		t.Errorf("the refusal is not logged:\n%s", d.Stderr())
	}
}

// A group named with --control-socket.group may use the socket (mode 0660,
// owned by the group); others may not connect.
func TestControlSocketGroup(t *testing.T) {
	d := startDaemon(t, "--listen", "", "--control-socket.group", "65534")
	st, err := os.Stat(d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %04o, want 0660", st.Mode().Perm())
	}
	if code, body := peerDo(t, 65534, 65534, "PUT", "unix:"+d.Socket+":/api/v1/knobs/kstat/counter", "33"); code != http.StatusOK {
		t.Fatalf("the group's member's PUT: %d %s", code, body)
	}
	if got := readText(t, d.Path("kstat/counter")); got != "33\n" {
		t.Errorf("kstat/counter reads %q after the member's PUT 33", got)
	}
	if code, body := peerDo(t, 4242, 4242, "GET", "unix:"+d.Socket+":/api/v1/knobs", ""); code != 0 {
		t.Errorf("a non-member's GET: %d %s, want the connection refused", code, body)
	}
}
