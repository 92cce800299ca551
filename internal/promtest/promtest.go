// Package promtest runs a real Prometheus 3 server and promtool for
// kstat's tests. The binaries are built from source by
// scripts/prometheus.sh into a cache outside the repository (the first
// build takes minutes; scripts/test.sh runs it before the tests).
package promtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// repoRoot is the directory of kstat's go.mod above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "prometheus.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("scripts/prometheus.sh not found above the working directory")
		}
		dir = parent
	}
}

// Bin returns the path of the cached "prometheus" or "promtool" binary,
// building both with scripts/prometheus.sh when they are missing.
func Bin(tb testing.TB, name string) string {
	tb.Helper()
	binOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			binErr = err
			return
		}
		var out, errOut bytes.Buffer
		cmd := exec.Command("bash", filepath.Join(root, "scripts", "prometheus.sh"))
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			binErr = fmt.Errorf("scripts/prometheus.sh (building Prometheus for the tests needs Go and the module proxy): %v\n%s", err, errOut.String())
			return
		}
		binDir = strings.TrimSpace(out.String())
	})
	if binErr != nil {
		tb.Fatal(binErr)
	}
	return filepath.Join(binDir, name)
}

// Server is a Prometheus server the test started on loopback.
type Server struct {
	URL    string // http://127.0.0.1:PORT
	cmd    *exec.Cmd
	log    bytes.Buffer
	logMu  sync.Mutex
	exited chan struct{}
}

func (s *Server) Write(p []byte) (int, error) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.Write(p)
}

// Log is what the server has logged.
func (s *Server) Log() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs Prometheus with config (the YAML text of prometheus.yml),
// its data in a temporary directory, and extra flags, and waits until it
// is ready. It is stopped at the test's cleanup.
func Start(tb testing.TB, config string, flags ...string) *Server {
	tb.Helper()
	bin := Bin(tb, "prometheus")
	dir := tb.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		tb.Fatal(err)
	}
	port := FreePort(tb)
	s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), exited: make(chan struct{})}
	args := append([]string{
		"--config.file=" + cfg,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + fmt.Sprintf("127.0.0.1:%d", port),
		"--log.level=warn",
	}, flags...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s, s
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }() //nolint:errcheck // the log says why
	tb.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // may have exited
		select {
		case <-s.exited:
		case <-time.After(15 * time.Second):
			s.cmd.Process.Kill() //nolint:errcheck // may have exited
			<-s.exited
		}
		if tb.Failed() {
			tb.Logf("prometheus log:\n%s", s.Log())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-s.exited:
			tb.Fatalf("prometheus exited at start:\n%s", s.Log())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("prometheus not ready after 60s:\n%s", s.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// api GETs an /api/v1 endpoint and decodes its data into out.
func (s *Server) api(path string, params url.Values, out any) error {
	resp, err := http.Get(s.URL + "/api/v1/" + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("%s: %v: %s", path, err, body)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s", path, r.Error)
	}
	return json.Unmarshal(r.Data, out)
}

// Sample is one series of an instant query's result.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query runs an instant PromQL query returning a vector.
func (s *Server) Query(q string) ([]Sample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := s.api("query", url.Values{"query": {q}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %s, want vector", q, data.ResultType)
	}
	out := make([]Sample, len(data.Result))
	for i, r := range data.Result {
		str, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %v: %v", q, r.Value[1], err)
		}
		out[i] = Sample{Labels: r.Metric, Value: v}
	}
	return out, nil
}

// WaitQuery runs q until it returns at least one sample (up to timeout).
func (s *Server) WaitQuery(tb testing.TB, q string, timeout time.Duration) []Sample {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		res, err := s.Query(q)
		if err == nil && len(res) > 0 {
			return res
		}
		if time.Now().After(deadline) {
			tb.Fatalf("query %q: no result after %v (last error: %v)", q, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Names returns the sorted metric names of the series that match a
// selector such as {job="kstat"}.
func (s *Server) Names(match string) ([]string, error) {
	var names []string
	if err := s.api("label/__name__/values", url.Values{"match[]": {match}}, &names); err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// Selector is a vector or range selector of a parsed expression: its metric name,
// or, when the name is matched by a regular expression, that expression.
type Selector struct {
	Name  string // set when the selector names one metric
	Regex string // set when __name__ is matched by =~
}

// ParseQuery parses a PromQL expression with the server's own parser
// (/api/v1/parse_query) and returns its vector selectors.
func (s *Server) ParseQuery(expr string) ([]Selector, error) {
	var ast any
	if err := s.api("parse_query", url.Values{"query": {expr}}, &ast); err != nil {
		return nil, err
	}
	var out []Selector
	var walk func(any)
	walk = func(n any) {
		switch n := n.(type) {
		case map[string]any:
			if t := n["type"]; t == "vectorSelector" || t == "matrixSelector" {
				sel := Selector{}
				if name, _ := n["name"].(string); name != "" {
					sel.Name = name
				}
				if ms, ok := n["matchers"].([]any); ok {
					for _, m := range ms {
						mm, _ := m.(map[string]any)
						if mm["name"] == "__name__" {
							switch mm["type"] {
							case "=":
								sel.Name, _ = mm["value"].(string)
							case "=~":
								sel.Regex, _ = mm["value"].(string)
							}
						}
					}
				}
				out = append(out, sel)
			}
			for _, v := range n {
				walk(v)
			}
		case []any:
			for _, v := range n {
				walk(v)
			}
		}
	}
	walk(ast)
	return out, nil
}
