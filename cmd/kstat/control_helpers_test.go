package main

// Helpers for tests that change a daemon's settings. A daemon's HTTP API
// is read-only by default; a test writes either over its control socket
// (d.SocketDo, as root) or over HTTPS as an authorized user
// (startWriterDaemon, then httpDo on the https:// base it returns).

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/kstat/kstat/internal/testutil"
)

// Writer is the basic-auth user that startWriterDaemon lets write.
type Writer struct {
	User, Pass string
	CertPath   string // the server's self-signed certificate (PEM)
	client     *http.Client
}

// Authorization is the value of the Authorization header of the writer,
// for clients such as a browser (chromedp: network.SetExtraHTTPHeaders).
func (w *Writer) Authorization() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(w.User+":"+w.Pass))
}

// Browser is a chromedp action that makes the tab send the writer's
// Authorization header with every request (the page's fetches included).
// The browser must also accept the generated certificate: start it with
// chromedp.Flag("ignore-certificate-errors", true).
func (w *Writer) Browser() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
			Headers: network.Headers{"Authorization": w.Authorization()},
		})
		return err
	})
}

// writers maps the host:port of each writer daemon's HTTPS server to its
// writer, so that httpDo sends an https:// request with the writer's
// credentials and trust.
var writers sync.Map // string -> *Writer

// startWriterDaemon starts kstat serve with HTTPS on a free loopback port
// (a generated certificate) and a basic-auth user "writer" allowed to write
// (--web.config.file, --web.write-users). It returns the daemon, the base
// URL (https://127.0.0.1:PORT) and the writer. httpDo on that base sends
// the writer's credentials and trusts the certificate, so a test that
// wrote with httpDo on startHTTPDaemon's base works unchanged on this one.
func startWriterDaemon(t *testing.T, args ...string) (*testDaemon, string, *Writer) {
	t.Helper()
	wc := testutil.NewWebConfig(t, map[string]string{"writer": "kstat-test-writer", "reader": "kstat-test-reader"}, true)
	d, base := startHTTPDaemon(t, append([]string{"--web.config.file", wc.Path, "--web.write-users", "writer"}, args...)...)
	base = strings.Replace(base, "http://", "https://", 1)
	w := &Writer{User: "writer", Pass: wc.Users["writer"], CertPath: wc.CertPath, client: wc.Client("writer")}
	u, _ := url.Parse(base)
	writers.Store(u.Host, w)
	t.Cleanup(func() {
		writers.Delete(u.Host)
		w.client.CloseIdleConnections()
	})
	return d, base, w
}

// clientFor is the client httpDo uses for rawURL: a writer's for the HTTPS
// base of a writer daemon, the default client otherwise.
func clientFor(rawURL string) *http.Client {
	if u, err := url.Parse(rawURL); err == nil && u.Scheme == "https" {
		if w, ok := writers.Load(u.Host); ok {
			return w.(*Writer).client
		}
	}
	return http.DefaultClient
}

// SocketDo sends one request over the daemon's control socket, as the
// test (root), and returns the status and the body.
func (d *testDaemon) SocketDo(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.Socket)
		},
	}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequest(method, "http://kstat"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
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

// peerEnv makes the test binary a one-request HTTP client (see
// runPeerRequest) instead of running the tests: the way a test sends a
// request as another user.
const peerEnv = "KSTAT_TEST_PEER_REQUEST"

// runPeerRequest, called by TestMain, sends the request that peerEnv
// describes ("METHOD URL BODY", URL unix:PATH:/api/... for a socket),
// prints "STATUS BODY" and exits; it returns when peerEnv is not set.
func runPeerRequest() {
	spec := os.Getenv(peerEnv)
	if spec == "" {
		return
	}
	parts := strings.SplitN(spec, " ", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	method, target, body := parts[0], parts[1], parts[2]
	c := http.DefaultClient
	if rest, ok := strings.CutPrefix(target, "unix:"); ok {
		sock, path, _ := strings.Cut(rest, ":")
		c = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var dl net.Dialer
				return dl.DialContext(ctx, "unix", sock)
			},
		}}
		target = "http://kstat" + path
	}
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err == nil {
		var resp *http.Response
		if resp, err = c.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			fmt.Printf("%d %s", resp.StatusCode, b)
			os.Exit(0)
		}
	}
	fmt.Printf("ERROR %v", err)
	os.Exit(0)
}

var (
	peerBinOnce sync.Once
	peerBin     string
)

// peerDo sends one request as uid:gid (not root) from a copy of the test
// binary that this user can run. target is a URL, or unix:SOCKET:/path
// for the control socket. It returns the status (0 when the request
// failed, such as a connect refused by the socket's mode) and the body or
// error text.
func peerDo(t *testing.T, uid, gid uint32, method, target, body string) (int, string) {
	t.Helper()
	testutil.RequireRoot(t)
	peerBinOnce.Do(func() {
		self, err := os.Executable()
		if err != nil {
			return
		}
		b, err := os.ReadFile(self)
		if err != nil {
			return
		}
		dir := filepath.Join(binDir, "peer")
		if os.MkdirAll(dir, 0o755) != nil || os.Chmod(binDir, 0o755) != nil {
			return
		}
		if os.WriteFile(filepath.Join(dir, "kstat.test"), b, 0o755) == nil {
			peerBin = filepath.Join(dir, "kstat.test")
		}
	})
	if peerBin == "" {
		t.Fatal("could not copy the test binary for a peer request")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, peerBin, "-test.run=^$")
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), peerEnv+"="+method+" "+target+" "+body)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("peer request as uid %d: %v\n%s", uid, err, out)
	}
	text := string(out)
	if rest, ok := strings.CutPrefix(text, "ERROR "); ok {
		return 0, rest
	}
	var code int
	if _, err := fmt.Sscanf(text, "%d", &code); err != nil {
		t.Fatalf("peer request output %q", text)
	}
	_, b, _ := strings.Cut(text, " ")
	return code, b
}
