package server

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
)

// OpenAPIDoc is the part of the OpenAPI description the tests read.
type openAPIDoc struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
}

// openAPIOps lists "METHOD path" of every operation of the description;
// with feature false only those the server itself serves (no
// x-kstat-feature).
func openAPIOps(t *testing.T, b []byte, feature bool) []string {
	t.Helper()
	var d openAPIDoc
	if err := json.Unmarshal(b, &d); err != nil || !strings.HasPrefix(d.OpenAPI, "3.") {
		t.Fatalf("openapi.json: %v (version %q)", err, d.OpenAPI)
	}
	var ops []string
	for p, item := range d.Paths {
		if _, other := item["x-kstat-feature"]; other && !feature {
			continue
		}
		for m := range item {
			switch m {
			case "get", "put", "post", "delete", "patch":
				ops = append(ops, strings.ToUpper(m)+" "+p)
			}
		}
	}
	sort.Strings(ops)
	return ops
}

// routeOp turns a ServeMux pattern into the description's form:
// {name...} is {name}, {$} is dropped.
func routeOp(pattern string) string {
	p := strings.ReplaceAll(pattern, "...}", "}")
	return strings.ReplaceAll(p, "{$}", "")
}

// The OpenAPI description lists exactly the routes the server registers,
// and /api/v1/ serves it.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	served := []string{"GET /metrics", "GET /healthz"}
	for _, r := range routes(&Server{}, &api{}) {
		served = append(served, routeOp(r.pattern))
	}
	sort.Strings(served)
	doc := openAPIOps(t, openAPI, false)
	if strings.Join(served, "\n") != strings.Join(doc, "\n") {
		t.Errorf("routes:\n%s\nOpenAPI operations:\n%s", strings.Join(served, "\n"), strings.Join(doc, "\n"))
	}

	f := start(t)
	for _, p := range []string{"/api/v1/", "/api/v1/openapi.json"} {
		code, body := f.do(t, "GET", p, "")
		if code != http.StatusOK || body != string(openAPI) {
			t.Errorf("GET %s: %d, %d bytes", p, code, len(body))
		}
	}
	if code, _ := f.do(t, "GET", "/api/v1/nothing", ""); code != http.StatusNotFound {
		t.Errorf("GET /api/v1/nothing: %d, want 404", code)
	}
}
