// Package web is kstat's live dashboard: one HTML page, its style sheet and
// its script, embedded in the binary. The page polls the daemon's JSON API
// (/api/v1/tree, /api/v1/snapshots, /api/v1/knobs) and sets knobs with PUT;
// it needs no network beyond the daemon and no build step.
package web

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

//go:embed static
var files embed.FS

//go:embed index.html
var indexHTML string

var index = template.Must(template.New("index").Parse(indexHTML))

// Prefix is the path under which Handler serves the page's files.
const Prefix = "/static/"

// Handler serves the page at "/" (with version shown in its header) and
// its style sheet and script under Prefix. Mount it on "GET /{$}" and
// "GET "+Prefix.
func Handler(version string) http.Handler {
	var page bytes.Buffer
	if err := index.Execute(&page, struct{ Version string }{version}); err != nil {
		panic(err) // the template is embedded: a failure is a bug caught by the tests
	}
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err)
	}
	built := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
		http.ServeContent(w, r, "index.html", built, bytes.NewReader(page.Bytes()))
	})
	files := http.StripPrefix(Prefix, http.FileServerFS(static))
	mux.HandleFunc("GET "+Prefix, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
	return mux
}
