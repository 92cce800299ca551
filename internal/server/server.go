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
	"github.com/prometheus/exporter-toolkit/web"

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
	Addr     string              // TCP listen address, such as 127.0.0.1:9090; "": none
	Root     *statsfs.Source     // the tree /api/v1/tree shows
	Knobs    *knob.Registry      // the knobs /api/v1/knobs reads and sets
	Gatherer prometheus.Gatherer // what /metrics serves (through its Transactional view when it has one)
	// Mux receives the server's routes and is served as is, so handlers
	// other parts of the daemon add to it are served too; nil: a new mux.
	Mux *http.ServeMux
	Log *slog.Logger // nil: discard
	// Health serves /healthz (the daemon's readiness and per-feature
	// state); nil: a handler that always answers "ok".
	Health http.Handler

	// WebConfigFile is an exporter-toolkit web config file (TLS, basic
	// auth) for the TCP listener; "": plain HTTP, read-only.
	WebConfigFile string
	// WriteUsers are the basic-auth users of WebConfigFile that may
	// change settings over HTTPS.
	WriteUsers []string
	// AllowedHosts are more names a write's Host or Origin may carry,
	// besides localhost, the host name and this machine's addresses.
	AllowedHosts []string
	// Socket is the path of the control socket serving the same API to
	// root (and SocketGroup); "": none.
	Socket      string
	SocketGroup string // group name or gid whose members may use Socket
}

// Server is kstat's HTTP server on a TCP address, a control socket, or
// both.
type Server struct {
	cfg     Config
	tcp     *http.Server
	sock    *http.Server
	ln      net.Listener
	sockLn  *net.UnixListener
	groupID int // of SocketGroup; -1 for none
	log     *slog.Logger
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
	s := &Server{cfg: cfg, log: log, groupID: -1}
	api := &api{root: cfg.Root, knobs: cfg.Knobs, log: log}
	// A gatherer with a transactional view (export.Gatherer) builds each
	// scrape's families in buffers it reuses once they are written.
	metrics := prometheus.ToTransactionalGatherer(cfg.Gatherer)
	if t, ok := cfg.Gatherer.(interface {
		Transactional() prometheus.TransactionalGatherer
	}); ok {
		metrics = t.Transactional()
	}
	mux.Handle("GET /metrics", promhttp.HandlerForTransactional(metrics, promhttp.HandlerOpts{
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
	for _, r := range routes(s, api) {
		mux.HandleFunc(r.pattern, r.handler)
	}
	newHTTP := func(t transport) *http.Server {
		return &http.Server{
			Addr:              cfg.Addr,
			Handler:           s.guard(mux, t),
			ReadHeaderTimeout: ReadHeaderTimeout,
			ReadTimeout:       ReadTimeout,
			WriteTimeout:      WriteTimeout,
			IdleTimeout:       IdleTimeout,
			MaxHeaderBytes:    MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	s.tcp = newHTTP(overTCP)
	s.sock = newHTTP(overSocket)
	s.sock.ConnContext = peerContext
	return s
}

// Listen checks the web config file and opens the TCP listener and the
// control socket; an address in use gives an error that says so.
func (s *Server) Listen() error {
	if err := checkWebConfig(s.cfg.WebConfigFile, s.cfg.WriteUsers); err != nil {
		return err
	}
	gid, err := lookupGroup(s.cfg.SocketGroup)
	if err != nil {
		return err
	}
	s.groupID = gid
	if s.cfg.Addr != "" {
		ln, err := net.Listen("tcp", s.cfg.Addr)
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("HTTP listen on %s: the address is already in use (another kstat serve or exporter on that port?); choose another with --listen, or --listen \"\" to serve no HTTP: %w", s.cfg.Addr, err)
		}
		if err != nil {
			return fmt.Errorf("HTTP listen on %s: %w", s.cfg.Addr, err)
		}
		s.ln = ln
	}
	if s.cfg.Socket != "" {
		ln, err := listenSocket(s.cfg.Socket, gid)
		if err != nil {
			if s.ln != nil {
				s.ln.Close()
			}
			return err
		}
		s.sockLn = ln
	}
	return nil
}

// Addr is the TCP listening address (with the port chosen for ":0"), or
// nil when there is no TCP listener.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve serves until Shutdown; it returns nil after a Shutdown. The TCP
// listener goes through the exporter toolkit (TLS and basic auth of the
// web config file); the control socket is served as is.
func (s *Server) Serve() error {
	errs := make(chan error, 2)
	n := 0
	if s.ln != nil {
		n++
		go func() {
			file := s.cfg.WebConfigFile
			errs <- web.Serve(s.ln, s.tcp, &web.FlagConfig{WebConfigFile: &file}, s.log)
		}()
	}
	if s.sockLn != nil {
		n++
		go func() { errs <- s.sock.Serve(s.sockLn) }()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && !errors.Is(err, http.ErrServerClosed) && first == nil {
			first = err
		}
	}
	return first
}

// Shutdown stops accepting connections and waits for the requests in
// flight until ctx ends; then it closes the connections left and removes
// the control socket.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.tcp.Shutdown(ctx)
	if err != nil {
		_ = s.tcp.Close()
	}
	if serr := s.sock.Shutdown(ctx); serr != nil {
		_ = s.sock.Close()
		err = errors.Join(err, serr)
	}
	if s.sockLn != nil {
		removeSocket(s.cfg.Socket)
	}
	return err
}
