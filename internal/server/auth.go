package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
)

// Access is what a request may do, as GET /api/v1/access tells it.
type Access struct {
	// Write reports whether the caller may change settings and clear
	// counters.
	Write bool `json:"write"`
	// Via is how the caller came: "http", "https" or "socket".
	Via string `json:"via"`
	// User is the authenticated basic-auth user, or the socket peer's uid
	// ("uid 0"); empty for an anonymous HTTP caller.
	User string `json:"user,omitempty"`
	// Hint says how to get write access when Write is false.
	Hint string `json:"hint,omitempty"`
}

// transport tells the guard which listener a request came from.
type transport int

const (
	overTCP transport = iota
	overSocket
)

// isWrite reports whether a request's method may change state: anything
// but GET, HEAD and OPTIONS.
func isWrite(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// guard checks every request before the mux sees it: a socket peer that is
// neither root nor in the control group is refused everything; a write
// needs write access and a Host and Origin that are the server's own.
func (s *Server) guard(h http.Handler, t transport) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		r = r.WithContext(withTransport(r.Context(), t))
		if t == overSocket {
			if p, ok := peerFrom(r.Context()); !ok || !s.peerAllowed(p) {
				writeError(w, http.StatusForbidden, s.peerRefusal(p))
				return
			}
		}
		if isWrite(r.Method) {
			if t == overTCP && !s.ownHost(r.Host) {
				s.log.Warn("write refused: foreign Host", "host", r.Host, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
				writeError(w, http.StatusForbidden, fmt.Sprintf(
					"Host %q is not this server's own: writes need a Host that names this server (protection against DNS rebinding); add the name with --web.allowed-hosts", r.Host))
				return
			}
			if o := r.Header.Get("Origin"); o != "" && !s.ownOrigin(o) {
				s.log.Warn("write refused: foreign Origin", "origin", o, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
				writeError(w, http.StatusForbidden, fmt.Sprintf(
					"Origin %q is not this server's own: writes from other sites' pages are refused", o))
				return
			}
			if a := s.access(r, t); !a.Write {
				s.log.Warn("write refused: not authorized", "via", a.Via, "user", a.User, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
				writeError(w, http.StatusForbidden, "not authorized to change settings: "+a.Hint)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// access works out what the request may do. Over TCP a write needs TLS and
// a basic-auth user the web config file lists (the exporter toolkit has
// checked the password before the request gets here) and --web.write-users
// names.
func (s *Server) access(r *http.Request, t transport) Access {
	if t == overSocket {
		p, _ := peerFrom(r.Context())
		return Access{Write: true, Via: "socket", User: fmt.Sprintf("uid %d", p.uid)}
	}
	a := Access{Via: "http"}
	if r.TLS != nil {
		a.Via = "https"
	}
	sock := "the control socket"
	if s.cfg.Socket != "" {
		sock = s.cfg.Socket
	}
	viaSocket := fmt.Sprintf("or use %s as root (kstat set PATH VALUE)", sock)
	if s.cfg.WebConfigFile == "" {
		a.Hint = "this HTTP server is read-only; to allow writes start kstat serve with --web.config.file (TLS and basic_auth_users) and --web.write-users NAME, " + viaSocket
		return a
	}
	user, _, ok := r.BasicAuth()
	users := s.webUsers()
	if !ok || users == nil {
		a.Hint = "this HTTP server is read-only: its --web.config.file has no basic_auth_users to check, " + viaSocket
		return a
	}
	if _, listed := users[user]; !listed {
		a.Hint = "log in as a user of --web.config.file named in --web.write-users, " + viaSocket
		return a
	}
	a.User = user
	switch {
	case !slices.Contains(s.cfg.WriteUsers, user):
		a.Hint = fmt.Sprintf("user %q may read but not write: name it in --web.write-users, %s", user, viaSocket)
	case r.TLS == nil:
		a.Hint = "writes need TLS, so that passwords do not travel in the clear: add tls_server_config to --web.config.file, " + viaSocket
	default:
		a.Write = true
	}
	return a
}

// webUsers reads the basic-auth users of the web config file now (the
// toolkit reads the file on every request, so this sees the same users);
// nil when it has none or cannot be read.
func (s *Server) webUsers() map[string]bool {
	c, err := LoadWebConfig(s.cfg.WebConfigFile)
	if err != nil || len(c.Users) == 0 {
		return nil
	}
	users := make(map[string]bool, len(c.Users))
	for u := range c.Users {
		users[u] = true
	}
	return users
}

// LoadWebConfig parses an exporter-toolkit web config file as the toolkit
// does (unknown keys are errors).
func LoadWebConfig(path string) (*web.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseWebConfig(b)
}

// ParseWebConfig parses the text of a web config file.
func ParseWebConfig(b []byte) (*web.Config, error) {
	var c web.Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, fmt.Errorf("web config: %w", err)
	}
	return &c, nil
}

// checkWebConfig validates the web config file and the write users
// against it when the server starts.
func checkWebConfig(path string, writeUsers []string) error {
	if path == "" {
		if len(writeUsers) > 0 {
			return fmt.Errorf("--web.write-users needs --web.config.file with basic_auth_users (and TLS)")
		}
		return nil
	}
	if err := web.Validate(path); err != nil {
		return fmt.Errorf("--web.config.file %s: %w", path, err)
	}
	c, err := LoadWebConfig(path)
	if err != nil {
		return fmt.Errorf("--web.config.file %s: %w", path, err)
	}
	for _, u := range writeUsers {
		if _, ok := c.Users[u]; !ok {
			return fmt.Errorf("--web.write-users names %q, which is not in the basic_auth_users of %s", u, path)
		}
	}
	return nil
}

// ownHost reports whether host (a Host header, maybe with a port) names
// this server: localhost, this machine's host name, a name given with
// --web.allowed-hosts, a loopback address, or an address of this
// machine. A page whose DNS name was rebound to 127.0.0.1 sends its own
// name, which is none of these.
func (s *Server) ownHost(host string) bool {
	if host == "" {
		return false
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.Trim(h, "[]"), ".")
	if ip := net.ParseIP(h); ip != nil {
		return localIP(ip)
	}
	h = strings.ToLower(h)
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	if name, err := os.Hostname(); err == nil && strings.EqualFold(name, h) {
		return true
	}
	for _, a := range s.cfg.AllowedHosts {
		if strings.EqualFold(strings.TrimSuffix(a, "."), h) {
			return true
		}
	}
	return false
}

// ownOrigin reports whether an Origin header names this server.
func (s *Server) ownOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return s.ownHost(u.Host)
}

// localIP reports whether ip is a loopback address or one of this
// machine's.
func localIP(ip net.IP) bool {
	if ip.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// accessHandler answers GET /api/v1/access.
func (s *Server) accessHandler(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.access(r, transportOf(r.Context())))
}

type ctxKey struct{}

// withTransport marks a request's context with its transport, so that the
// shared mux's handlers can tell.
func withTransport(ctx context.Context, t transport) context.Context {
	return context.WithValue(ctx, ctxKey{}, t)
}

func transportOf(ctx context.Context) transport {
	t, _ := ctx.Value(ctxKey{}).(transport)
	return t
}
