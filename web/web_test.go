package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// get serves one request and returns the response and its body.
func get(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	resp := rec.Result()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestPage: the page carries the version, HTML-escaped, and links only
// files the handler serves.
func TestPage(t *testing.T) {
	h := Handler(`1.2<script>`)
	resp, body := get(t, h, "GET", "/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(body, `id="version">1.2&lt;script&gt;</b>`) {
		t.Errorf("the version is not shown escaped:\n%s", body)
	}
	for _, f := range []struct{ path, ctype string }{
		{"/static/app.js", "text/javascript"},
		{"/static/style.css", "text/css"},
	} {
		if !strings.Contains(body, `"`+f.path+`"`) {
			t.Errorf("the page does not link %s", f.path)
		}
		resp, text := get(t, h, "GET", f.path)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), f.ctype) || len(text) == 0 {
			t.Errorf("GET %s: %d %q, %d bytes", f.path, resp.StatusCode, resp.Header.Get("Content-Type"), len(text))
		}
		if strings.Contains(text, "http://") || strings.Contains(text, "https://") {
			t.Errorf("%s refers to something outside the daemon", f.path)
		}
	}
	if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("the page loads something from outside the daemon:\n%s", body)
	}
}

// TestNotFound: no directory listing, no other paths, no other methods.
func TestNotFound(t *testing.T) {
	h := Handler("dev")
	for _, p := range []string{"/static/", "/static/missing.css", "/index.html", "/x"} {
		if resp, _ := get(t, h, "GET", p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	if resp, _ := get(t, h, "POST", "/"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", resp.StatusCode)
	}
}
