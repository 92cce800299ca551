package main

// Tests of the client commands over the control socket and the mount:
// the same answers both ways, refusals with the knob's own reason, pids
// with a sign or bare, counters cleared through the API, completion.

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// For every knob, "kstat set" prints the same reason as the HTTP 400 body,
// over the socket alone and with the mount there too; the knob keeps its
// value (read from the mount).
func TestCLIRefusalText(t *testing.T) {
	d := startDaemon(t)
	nowhere := filepath.Join(t.TempDir(), "nothing-mounted")
	code, body := d.SocketDo(t, "GET", "/api/v1/knobs", "")
	var knobs []struct{ Name, Value string }
	if err := json.Unmarshal([]byte(body), &knobs); err != nil || code != 200 || len(knobs) < 5 {
		t.Fatalf("GET /api/v1/knobs: %d %s %v", code, body, err)
	}
	for _, k := range knobs {
		const bad = "no-such-setting!"
		before := readText(t, d.Path(k.Name))
		code, body := d.SocketDo(t, "PUT", "/api/v1/knobs/"+k.Name, bad)
		var e struct{ Error string }
		if err := json.Unmarshal([]byte(body), &e); err != nil || code != http.StatusBadRequest {
			t.Errorf("PUT %s %q: %d %s, want 400", k.Name, bad, code, body)
			continue
		}
		want := "kstat: set " + k.Name + ": " + e.Error + "\n"
		for _, mount := range []string{nowhere, d.Mount} {
			_, stderr, err := runKstat(t, "set", "--mount", mount, "--socket", d.Socket, k.Name, bad)
			if err == nil || stderr != want {
				t.Errorf("kstat set %s %q (--mount %s): %v\nstderr %q\nwant   %q", k.Name, bad, mount, err, stderr, want)
			}
		}
		if after := readText(t, d.Path(k.Name)); after != before {
			t.Errorf("%s reads %q after the refusals, want %q kept", k.Name, after, before)
		}
	}
}

// get, tree and set work over the control socket when nothing is mounted,
// and give what the mount gives.
func TestCLIOverSocket(t *testing.T) {
	d := startDaemon(t)
	nowhere := filepath.Join(t.TempDir(), "nothing-mounted")
	sock := []string{"--mount", nowhere, "--socket", d.Socket}

	out, stderr, err := runKstat(t, append([]string{"get"}, append(sock, "memory/total")...)...)
	if err != nil || out != readText(t, d.Path("memory/total")) {
		t.Errorf("get memory/total over the socket: %v %q %s, the mount reads %q", err, out, stderr, readText(t, d.Path("memory/total")))
	}
	var e struct{ Path, Kind, Type, Unit, Mode string }
	out, _, err = runKstat(t, append([]string{"get", "--json"}, append(sock, "memory/total")...)...)
	if err != nil || json.Unmarshal([]byte(out), &e) != nil || e.Kind != "value" || e.Unit != "bytes" || e.Mode != "0444" {
		t.Errorf("get --json over the socket: %v %s", err, out)
	}

	// tree --json: the same sources, values and controls both ways.
	names := func(args ...string) []string {
		out, stderr, err := runKstat(t, append([]string{"tree", "--json"}, args...)...)
		if err != nil {
			t.Fatalf("tree --json %v: %v %s", args, err, stderr)
		}
		var walk func(s *treeJSON, prefix string) []string
		walk = func(s *treeJSON, prefix string) []string {
			var l []string
			for _, v := range s.Values {
				l = append(l, prefix+v.Name+" "+v.Type+" "+v.Unit+" "+v.Mode)
			}
			for _, c := range s.Controls {
				l = append(l, prefix+c.Name+" control "+c.Mode)
			}
			for _, sub := range s.Sources {
				l = append(l, walk(sub, prefix+sub.Name+"/")...)
			}
			return l
		}
		var root treeJSON
		if err := json.Unmarshal([]byte(out), &root); err != nil {
			t.Fatalf("tree --json: %v\n%s", err, out)
		}
		l := walk(&root, "")
		sort.Strings(l)
		return l
	}
	viaSocket := strings.Join(names(append(sock, "self")...), "\n")
	viaMount := strings.Join(names("--mount", d.Mount, "--socket", "", "self"), "\n")
	if viaSocket != viaMount || !strings.Contains(viaSocket, "fuse_reads u64 requests 0644") {
		t.Errorf("tree --json self differs:\nsocket:\n%s\nmount:\n%s", viaSocket, viaMount)
	}
	out, _, err = runKstat(t, append([]string{"tree"}, append(sock, "self")...)...)
	if err != nil || !strings.Contains(out, "fuse_reads") || !strings.HasPrefix(strings.SplitN(out, "\n", 3)[1], "self/") {
		t.Errorf("tree self over the socket: %v\n%s", err, out)
	}

	// pids: bare, +, - (a value starting with "-" is not a flag).
	for _, tc := range []struct{ value, want string }{{"5678", "5678"}, {"+1234", "1234 5678"}, {"-5678", "1234"}, {"-1234", ""}} {
		if _, stderr, err := runKstat(t, append(append([]string{"set"}, sock...), "tracer/pids", tc.value)...); err != nil {
			t.Fatalf("set tracer/pids %s: %v %s", tc.value, err, stderr)
		}
		if got := strings.TrimSpace(readText(t, d.Path("tracer/pids"))); got != tc.want {
			t.Errorf("after set tracer/pids %s the mount says %q, want %q", tc.value, got, tc.want)
		}
	}
	if _, stderr, err := runKstat(t, "set", "--mount", d.Mount, "--socket", "", "tracer/pids", "7"); err != nil {
		t.Errorf("set tracer/pids 7 through the mount: %v %s", err, stderr)
	}

	// A counter clears through the API (and the CLI over the socket).
	for range 20 {
		readText(t, d.Path("self/goroutines"))
	}
	if code, body := d.SocketDo(t, "PUT", "/api/v1/values/self/fuse_reads", "0"); code != http.StatusOK {
		t.Fatalf("PUT /api/v1/values/self/fuse_reads 0: %d %s", code, body)
	}
	if v := readNumber(t, d.Path("self/fuse_reads")); v > 3 {
		t.Errorf("fuse_reads = %v after the API cleared it", v)
	}
	if code, body := d.SocketDo(t, "PUT", "/api/v1/values/self/fuse_reads", "7"); code != http.StatusBadRequest {
		t.Errorf("PUT 7 to a counter: %d %s, want 400", code, body)
	}
	if code, body := d.SocketDo(t, "PUT", "/api/v1/values/memory/total", "0"); code != http.StatusMethodNotAllowed {
		t.Errorf("PUT 0 to a gauge: %d %s, want 405", code, body)
	}
	if !strings.Contains(d.Stderr(), `msg="counter cleared" path=self/fuse_reads via="socket uid 0`) {
		t.Errorf("the clear is not logged:\n%s", d.Stderr())
	}
	// Changes through the mount are logged too.
	if _, stderr, err := runKstat(t, "set", "--mount", d.Mount, "--socket", "", "self/fuse_reads", "0"); err != nil {
		t.Errorf("set self/fuse_reads 0 through the mount: %v %s", err, stderr)
	}
	if !strings.Contains(d.Stderr(), `msg="counter cleared" path=self/fuse_reads via=mount`) {
		t.Errorf("the mount's clear is not logged:\n%s", d.Stderr())
	}
	if !strings.Contains(d.Stderr(), `knob=tracer/pids from="" to=7 via=mount`) {
		t.Errorf("the mount's setting change is not logged:\n%s", d.Stderr())
	}

	// Completion offers paths, and values for a knob.
	out, _, _ = runKstat(t, "__complete", "get", "--mount", d.Mount, "se")
	if !strings.Contains(out, "self/\n") {
		t.Errorf("completing \"se\": %q", out)
	}
	out, _, _ = runKstat(t, "__complete", "get", "--mount", d.Mount, "self/fuse_r")
	if !strings.Contains(out, "self/fuse_reads\n") {
		t.Errorf("completing \"self/fuse_r\": %q", out)
	}
	out, _, _ = runKstat(t, "__complete", "set", "--mount", d.Mount, "tracer/sort", "")
	if !strings.Contains(out, "kmalloc\n") {
		t.Errorf("completing tracer/sort's values: %q", out)
	}
	out, _, _ = runKstat(t, "__complete", "set", "--mount", d.Mount, "kstat/start", "")
	if !strings.Contains(out, "0\n1\n") {
		t.Errorf("completing kstat/start's values: %q", out)
	}
}

// treeJSON is the shape of tree --json (and GET /api/v1/tree).
type treeJSON struct {
	Name     string
	Values   []struct{ Name, Type, Unit, Mode string }
	Controls []struct {
		Name, Mode string
	}
	Sources []*treeJSON
}

// tcp --watch runs past the old 5s limit until interrupted, then exits 0.
func TestTCPWatchUntilInterrupted(t *testing.T) {
	d := startDaemon(t)
	cmd := exec.Command(kstatBinary(t), "tcp", "--watch", "--interval", "500ms", "--mount", d.Mount)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		t.Fatalf("tcp --watch exited after less than 6s: %v\n%s", err, out.String())
	case <-time.After(6 * time.Second):
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("tcp --watch after SIGINT: %v\n%s", err, out.String())
		}
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("tcp --watch ignored SIGINT")
	}
	if n := strings.Count(out.String(), "\n"); n < 10 {
		t.Errorf("tcp --watch printed %d lines in 6s at 500ms:\n%s", n, out.String())
	}
}

// Without a daemon, tcp says on stderr what it does before it counts.
func TestTCPSaysItWaits(t *testing.T) {
	nowhere := filepath.Join(t.TempDir(), "nothing-mounted")
	_, stderr, err := runKstat(t, "tcp", "--mount", nowhere, "--socket", filepath.Join(nowhere, "sock"), "--duration", "1s")
	if err != nil || !strings.Contains(stderr, "kstat tcp: no daemon; counting with its own program for 1s") {
		t.Errorf("tcp without a daemon: %v, stderr %q", err, stderr)
	}
}
