// Package server is kstat's HTTP server: Prometheus metrics on /metrics, a
// JSON API over the statistics tree and the knobs under /api/v1/, and
// /healthz. It mounts its routes into a mux the daemon's features share, so
// their handlers (such as /api/v1/snapshots) are served too.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kstat/kstat/internal/knob"
	"github.com/kstat/kstat/statsfs"
)

// MaxBodyBytes bounds every request body; a larger one gets 413.
const MaxBodyBytes = 4 << 10

// The server's timeouts. WriteTimeout leaves a scrape of a large tree time
// to finish; ReadHeaderTimeout stops slow-header clients early.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 2 * time.Minute
	MaxHeaderBytes    = 16 << 10
)

// Config is what the server serves.
type Config struct {
	Addr     string              // listen address, such as 127.0.0.1:9090
	Root     *statsfs.Source     // the tree /api/v1/tree shows
	Knobs    *knob.Registry      // the knobs /api/v1/knobs reads and sets
	Gatherer prometheus.Gatherer // what /metrics serves
	// Mux receives the server's routes and is served as is, so handlers
	// other parts of the daemon add to it are served too; nil: a new mux.
	Mux *http.ServeMux
	Log *slog.Logger // nil: discard
	// Health serves /healthz (the daemon's readiness and per-feature
	// state); nil: a handler that always answers "ok".
	Health http.Handler
}

// Server is a listening HTTP server.
type Server struct {
	http *http.Server
	ln   net.Listener
	log  *slog.Logger
}

// New adds the routes to cfg.Mux and returns the server, not yet
// listening.
func New(cfg Config) *Server {
	mux := cfg.Mux
	if mux == nil {
		mux = http.NewServeMux()
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	api := &api{root: cfg.Root, knobs: cfg.Knobs, log: log}
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
		// Scrapes are serialised in the exporter; more waiting ones get 503.
		MaxRequestsInFlight: 8,
	}))
	health := cfg.Health
	if health == nil {
		health = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte("ok\n"))
		})
	}
	mux.Handle("GET /healthz", health)
	mux.HandleFunc("GET /api/v1/tree", api.tree)
	mux.HandleFunc("GET /api/v1/tree/{path...}", api.tree)
	mux.HandleFunc("GET /api/v1/knobs", api.listKnobs)
	mux.HandleFunc("GET /api/v1/knobs/{name...}", api.getKnob)
	mux.HandleFunc("PUT /api/v1/knobs/{name...}", api.putKnob)
	return &Server{
		http: &http.Server{
			Addr:              cfg.Addr,
			Handler:           limitBodies(mux),
			ReadHeaderTimeout: ReadHeaderTimeout,
			ReadTimeout:       ReadTimeout,
			WriteTimeout:      WriteTimeout,
			IdleTimeout:       IdleTimeout,
			MaxHeaderBytes:    MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		log: log,
	}
}

// limitBodies bounds every request body to MaxBodyBytes.
func limitBodies(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		h.ServeHTTP(w, r)
	})
}

// Listen opens the listening socket; an address in use gives an error
// that says so.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.http.Addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("HTTP listen on %s: the address is already in use (another kstat serve or exporter on that port?); choose another with --listen, or --listen \"\" to serve no HTTP: %w", s.http.Addr, err)
	}
	if err != nil {
		return fmt.Errorf("HTTP listen on %s: %w", s.http.Addr, err)
	}
	s.ln = ln
	return nil
}

// Addr is the listening address (with the port chosen for ":0").
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until Shutdown; it returns nil after a Shutdown.
func (s *Server) Serve() error {
	err := s.http.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for the requests in
// flight until ctx ends; then it closes the connections left.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		_ = s.http.Close()
	}
	return err
}
