// Package web is kstat's live dashboard: one HTML page, its style sheet and
// script, and the uPlot charting library (vendored by scripts/vendor-web.sh
// with its licence), all embedded in the binary. The page opens one
// Server-Sent Events stream, GET /api/v1/history/events: the first event
// holds the whole history window the server keeps (internal/history), each
// later one a new sample with the server's rates and the page's tables. It
// sets knobs with PUT /api/v1/knobs/{path}; it loads nothing from outside
// the daemon.
package web

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/kstat/kstat/internal/history"
	"github.com/kstat/kstat/internal/knob"
	"github.com/kstat/kstat/statsfs"
)

//go:embed static
var files embed.FS

//go:embed index.html
var indexHTML string

var index = template.Must(template.New("index").Parse(indexHTML))

// Paths the handler serves.
const (
	Prefix     = "/static/"               // the page's files
	HistoryAPI = "/api/v1/history"        // the history window as JSON
	EventsAPI  = "/api/v1/history/events" // the history, then updates, as Server-Sent Events
)

// retry is how soon a browser reconnects a broken stream.
const retry = "retry: 1000\n\n"

// Config is what the dashboard shows.
type Config struct {
	Version string
	Root    *statsfs.Source   // the tree the tables show
	Knobs   *knob.Registry    // the knobs the panels show and set
	History *history.Recorder // the charts' samples
	Log     *slog.Logger      // nil: discard
	// Done ends the event streams (the daemon is stopping) so that the
	// HTTP server's shutdown need not wait for them.
	Done <-chan struct{}
}

// Handler serves the page at "/" (with the version in its header), its
// files under Prefix, HistoryAPI and EventsAPI. Mount it on "GET /{$}",
// "GET "+Prefix, "GET "+HistoryAPI and "GET "+EventsAPI.
func Handler(cfg Config) http.Handler {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	var page bytes.Buffer
	if err := index.Execute(&page, struct{ Version string }{cfg.Version}); err != nil {
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
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'")
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
	s := &streams{cfg: cfg}
	mux.HandleFunc("GET "+HistoryAPI, s.history)
	mux.HandleFunc("GET "+EventsAPI, s.events)
	return mux
}

// streams serves the history and its event stream.
type streams struct {
	cfg Config
}

// message is the data of an event: the history (first event) or an
// update (the others), with the page's tables as of now.
type message struct {
	History *history.History `json:"history,omitempty"`
	Update  *history.Update  `json:"update,omitempty"`
	Status  *Status          `json:"status"`
}

func (s *streams) history(w http.ResponseWriter, _ *http.Request) {
	h := s.cfg.History.History()
	b, err := json.Marshal(message{History: &h, Status: ReadStatus(s.cfg.Root, s.cfg.Knobs)})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// events streams the history, then every update, until the viewer goes,
// the daemon stops or the viewer falls behind (the browser reconnects and
// starts over with the history).
func (s *streams) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// The server's write timeout bounds ordinary answers; a stream has
	// none. A writer without deadlines has no timeout to lift.
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	hist, updates, stop := s.cfg.History.Subscribe()
	defer stop()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-s.cfg.Done:
			cancel()
		case <-ctx.Done():
		}
	}()
	send := func(event string, m message) bool {
		b, err := json.Marshal(m)
		if err != nil {
			s.cfg.Log.Error("dashboard event not encoded", "event", event, "err", err)
			return false
		}
		var buf bytes.Buffer
		buf.WriteString("event: ")
		buf.WriteString(event)
		buf.WriteString("\ndata: ")
		buf.Write(b)
		buf.WriteString("\n\n")
		if _, err := w.Write(buf.Bytes()); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if _, err := w.Write([]byte(retry)); err != nil {
		return
	}
	if !send("history", message{History: &hist, Status: ReadStatus(s.cfg.Root, s.cfg.Knobs)}) {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case u, ok := <-updates:
			if !ok {
				return
			}
			if !send("update", message{Update: &u, Status: ReadStatus(s.cfg.Root, s.cfg.Knobs)}) {
				return
			}
		}
	}
}
