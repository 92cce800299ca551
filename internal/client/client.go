// Package client is the CLI's one way to a running daemon's tree: its
// statistics mount when one is there, its control socket (the HTTP API of
// internal/server) otherwise. Both give the same answers, in the API's
// types (server.Entry, server.Source).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/internal/selfstat"
	"github.com/kstat/kstat/internal/server"
	"github.com/kstat/kstat/statsfs"
	"github.com/kstat/kstat/statsfs/fusefs"
)

// Timeout bounds one request over the control socket.
const Timeout = 10 * time.Second

// Client reads and writes one daemon's tree.
type Client struct {
	mount  string       // the mount, absolute, when it is kstat's
	socket string       // the control socket, when it answers
	http   *http.Client // over socket
	// setViaSocket: the socket belongs to the daemon of the mount, so
	// writes go there and a refusal comes with the knob's reason.
	setViaSocket bool
}

// Open finds the daemon: the statistics filesystem mounted at mount, or
// the control socket at socket when nothing is mounted. When both are
// there and belong to the same daemon, writes go through the socket,
// whose refusals carry the knob's own reason.
func Open(mount, socket string) (*Client, error) {
	c := &Client{}
	if mount != "" {
		if abs, err := filepath.Abs(mount); err == nil {
			mount = abs
		}
		if typ, ok := fusefs.MountedAt(mount); ok && typ == "fuse."+fusefs.Type {
			c.mount = mount
		}
	}
	var sockErr error
	if socket != "" {
		c.http = socketClient(socket)
		if _, sockErr = c.apiGet("/api/v1/access"); sockErr == nil {
			c.socket = socket
		}
	}
	switch {
	case c.mount != "" && c.socket != "":
		c.setViaSocket = c.sameDaemon()
	case c.mount == "" && c.socket == "":
		why := ""
		if socket != "" {
			why = fmt.Sprintf("; the control socket %s does not answer either (%v)", socket, shortErr(sockErr))
		}
		return nil, fmt.Errorf("no statistics filesystem is mounted at %s: is \"kstat serve\" running? (or pass --mount DIR, or --socket PATH as root%s)", mount, why)
	}
	return c, nil
}

// Via says how the client reaches the daemon: "mount DIR" or "socket PATH".
func (c *Client) Via() string {
	if c.mount != "" {
		return "mount " + c.mount
	}
	return "socket " + c.socket
}

// sameDaemon compares the start time the mount and the socket report.
func (c *Client) sameDaemon() bool {
	const p = selfstat.Dir + "/" + selfstat.StartTimeSeconds
	b, err := os.ReadFile(filepath.Join(c.mount, p))
	if err != nil {
		return false
	}
	e, err := c.socketGet(p)
	return err == nil && strings.TrimSpace(e.Text) == strings.TrimSpace(string(b))
}

func socketClient(path string) *http.Client {
	return &http.Client{
		Timeout: Timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
		},
	}
}

// Clean makes a tree path of rel: no leading or trailing slash, no "..";
// a path inside mount loses the mount's prefix.
func Clean(mount, rel string) string {
	if abs, err := filepath.Abs(mount); err == nil && mount != "" {
		if r, ok := strings.CutPrefix(rel, abs+"/"); ok {
			rel = r
		}
	}
	return strings.TrimPrefix(filepath.Clean("/"+rel), "/")
}

// Error is a refusal or failure the daemon explained.
type Error struct {
	Op, Path string
	Code     int    // the HTTP status over the socket; 0 over the mount
	Reason   string // the daemon's text: the HTTP error body, or the errno's
	Err      error  // the errno over the mount
}

func (e *Error) Error() string {
	p := e.Path
	if p == "" {
		p = "/"
	}
	return fmt.Sprintf("%s %s: %s", e.Op, p, e.Reason)
}

func (e *Error) Unwrap() error { return e.Err }

// Get reads one value or control file.
func (c *Client) Get(path string) (server.Entry, error) {
	if c.mount == "" {
		return c.socketGet(path)
	}
	file := filepath.Join(c.mount, path)
	st, err := os.Stat(file)
	if err != nil {
		return server.Entry{}, c.fileErr("get", path, err)
	}
	if st.IsDir() {
		return server.Entry{}, &Error{Op: "get", Path: path, Reason: fmt.Sprintf("is a source (a directory); \"kstat tree %s\" prints its values", path)}
	}
	return c.fileEntry(path, file, st)
}

func (c *Client) fileEntry(path, file string, st fs.FileInfo) (server.Entry, error) {
	e := server.Entry{Path: path, Kind: "value", Mode: fmt.Sprintf("%04o", uint32(st.Mode().Perm())),
		Type: xattr(file, fusefs.XattrType), Unit: xattr(file, fusefs.XattrUnit), Help: xattr(file, fusefs.XattrHelp)}
	if e.Type == "control" {
		e.Kind = "control"
	}
	b, err := os.ReadFile(file)
	switch {
	case errors.Is(err, syscall.ENODATA):
		// Absent: the kernel does not provide it; as the API says.
		e.Value, e.Text = json.RawMessage("null"), statsfs.Unavailable+"\n"
	case err != nil:
		return e, c.fileErr("get", path, err)
	default:
		e.Text = string(b)
		if e.Kind == "value" {
			e.Value = number(strings.TrimSpace(e.Text))
		}
	}
	return e, nil
}

// number is a value's text as the API's JSON number.
func number(text string) json.RawMessage {
	if json.Valid([]byte(text)) && text != "" && (text[0] == '-' || (text[0] >= '0' && text[0] <= '9')) {
		return json.RawMessage(text)
	}
	return json.RawMessage(fmt.Sprintf("%q", text))
}

func (c *Client) socketGet(path string) (server.Entry, error) {
	var e server.Entry
	b, err := c.apiGet("/api/v1/values/" + escape(path))
	if err != nil {
		return e, c.apiErr("get", path, err)
	}
	return e, json.Unmarshal(b, &e)
}

// Set writes value to the file path as the mount does: a control takes a
// new setting, a cumulative value takes 0, which clears it. A refusal is
// an *Error whose Reason is the daemon's own, when it can be had.
func (c *Client) Set(path, value string) error {
	if c.mount == "" || c.setViaSocket {
		_, err := c.api(http.MethodPut, "/api/v1/values/"+escape(path), value)
		if err != nil {
			return c.apiErr("set", path, err)
		}
		return nil
	}
	file := filepath.Join(c.mount, path)
	st, err := os.Stat(file)
	if err != nil {
		return c.fileErr("set", path, err)
	}
	if st.IsDir() {
		return &Error{Op: "set", Path: path, Reason: "is a source (a directory), not a value"}
	}
	if st.Mode().Perm()&0o222 == 0 {
		return &Error{Op: "set", Path: path, Err: syscall.EACCES, Reason: fmt.Sprintf("%v: the file is read-only (mode %04o)", syscall.EACCES, st.Mode().Perm())}
	}
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		return c.fileErr("set", path, err)
	}
	_, err = f.WriteString(value + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EINVAL):
		hint := " (the daemon's log says why; run as root with its control socket, --socket, to see the reason here)"
		if xattr(file, fusefs.XattrType) != "control" {
			hint = " (a value file takes only 0, which clears it)"
		}
		return &Error{Op: "set", Path: path, Err: syscall.EINVAL, Reason: fmt.Sprintf("%v: the file refused %q%s", syscall.EINVAL, value, hint)}
	}
	return c.fileErr("set", path, err)
}

// Tree returns the source at path with everything below it.
func (c *Client) Tree(path string) (*server.Source, error) {
	if c.mount == "" {
		b, err := c.apiGet("/api/v1/tree/" + escape(path))
		if err != nil {
			return nil, c.apiErr("tree", path, err)
		}
		var s server.Source
		return &s, json.Unmarshal(b, &s)
	}
	dir := filepath.Join(c.mount, path)
	st, err := os.Stat(dir)
	if err != nil {
		return nil, c.fileErr("tree", path, err)
	}
	if !st.IsDir() {
		return nil, &Error{Op: "tree", Path: path, Reason: fmt.Sprintf("is a file, not a source; \"kstat get %s\" prints it", path)}
	}
	s, err := c.readDir(path, dir)
	if err != nil {
		return nil, c.fileErr("tree", path, err)
	}
	return s, nil
}

// readDir builds the API's Source from a directory of the mount.
func (c *Client) readDir(path, dir string) (*server.Source, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	name := filepath.Base(dir)
	if path == "" {
		name = "kstat"
	}
	s := &server.Source{Name: name, Path: path, Label: xattr(dir, fusefs.XattrLabel), Values: []server.Value{}}
	for _, e := range es {
		file := filepath.Join(dir, e.Name())
		rel := strings.TrimPrefix(path+"/"+e.Name(), "/")
		if e.IsDir() {
			sub, err := c.readDir(rel, file)
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since the listing
			}
			if err != nil {
				return nil, err
			}
			s.Sources = append(s.Sources, sub)
			continue
		}
		st, err := os.Stat(file)
		if err != nil {
			continue
		}
		en, err := c.fileEntry(rel, file, st)
		if err != nil {
			en.Text = "<" + errText(err) + ">"
		}
		if en.Kind == "control" {
			s.Controls = append(s.Controls, server.Control{Name: e.Name(), Help: en.Help, Mode: en.Mode, Text: en.Text})
			continue
		}
		flag := xattr(file, fusefs.XattrFlag)
		s.Values = append(s.Values, server.Value{Name: e.Name(), Value: en.Value, Text: strings.TrimSuffix(en.Text, "\n"),
			Type: en.Type, Unit: en.Unit, Flag: flag, Mode: en.Mode, Aggregate: xattr(file, fusefs.XattrAggr), Help: en.Help})
	}
	return s, nil
}

// escape escapes each segment of a tree path for a URL.
func escape(path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// apiError is an HTTP answer that is not 2xx.
type apiError struct {
	code   int
	reason string
}

func (e *apiError) Error() string { return e.reason }

func (c *Client) apiGet(path string) ([]byte, error) { return c.api(http.MethodGet, path, "") }

// api sends one request over the socket and returns the body of a 2xx
// answer; other answers give an *apiError with the body's error text.
func (c *Client) api(method, path, body string) ([]byte, error) {
	req, err := http.NewRequest(method, "http://kstat"+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var e server.Error
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
		}
		return nil, &apiError{code: resp.StatusCode, reason: e.Error}
	}
	return b, nil
}

func (c *Client) apiErr(op, path string, err error) error {
	var ae *apiError
	if errors.As(err, &ae) {
		return &Error{Op: op, Path: path, Code: ae.code, Reason: ae.reason}
	}
	return &Error{Op: op, Path: path, Err: err, Reason: fmt.Sprintf("control socket %s: %v", c.socket, err)}
}

// fileErr turns an error on a file of the mount into one that says what
// to do.
func (c *Client) fileErr(op, path string, err error) error {
	e := &Error{Op: op, Path: path, Err: err}
	switch {
	case errors.Is(err, syscall.ENOTCONN):
		e.Reason = fmt.Sprintf("%v: the daemon that mounted %s has died; run \"kstat serve\" again, it recovers the mount", syscall.ENOTCONN, c.mount)
	case errors.Is(err, fs.ErrNotExist):
		e.Reason = fmt.Sprintf("no such file in %s (\"kstat tree\" lists them)", c.mount)
	case errors.Is(err, syscall.EACCES):
		e.Reason = fmt.Sprintf("%v: the file is read-only", syscall.EACCES)
	default:
		e.Reason = errText(err)
	}
	return e
}

// errText is the errno text of err, without the path.
func errText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

func shortErr(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// xattr returns the extended attribute name of path, or "".
func xattr(path, name string) string {
	buf := make([]byte, 256)
	n, err := unix.Getxattr(path, name, buf)
	if errors.Is(err, unix.ERANGE) {
		if n, err = unix.Getxattr(path, name, nil); err == nil {
			buf = make([]byte, n)
			n, err = unix.Getxattr(path, name, buf)
		}
	}
	if err != nil || n < 0 {
		return ""
	}
	return string(buf[:n])
}
