package server

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/kstat/kstat/internal/knob"
	"github.com/kstat/kstat/statsfs"
)

// api holds the JSON handlers.
type api struct {
	root  *statsfs.Source
	knobs *knob.Registry
	log   *slog.Logger
}

// Source is one source of GET /api/v1/tree: its values, controls and
// subordinate sources.
type Source struct {
	Name     string            `json:"name"`
	Path     string            `json:"path"`             // below the tree's root
	Label    string            `json:"label,omitempty"`  // instance label key (statsfs.NewInstance)
	Labels   map[string]string `json:"labels,omitempty"` // instance labels along the path
	Values   []Value           `json:"values"`
	Controls []Control         `json:"controls,omitempty"`
	Sources  []*Source         `json:"sources,omitempty"`
}

// Value is one value of a source, as read during the request.
type Value struct {
	Name string `json:"name"`
	// Value is the number: exact decimal for integers; for f64 a JSON
	// number, or the string "NaN", "+Inf" or "-Inf"; null when the value
	// is unavailable (Text is then "unavailable").
	Value     json.RawMessage `json:"value"`
	Text      string          `json:"text"` // what the value's file shows, without the newline
	Type      string          `json:"type"` // u64, s32, bool, f64, ...
	Unit      string          `json:"unit,omitempty"`
	Flag      string          `json:"flag"` // cumulative or floating
	Mode      string          `json:"mode"` // file mode: 0644 clearable, 0444 read-only
	Aggregate string          `json:"aggregate,omitempty"`
	Help      string          `json:"help,omitempty"`
}

// Control is a control file: a knob or a report, with its current text.
type Control struct {
	Name string `json:"name"`
	Help string `json:"help,omitempty"`
	Mode string `json:"mode"`
	Text string `json:"text"`
}

// Knob is one knob of GET /api/v1/knobs, and the answer to a knob's GET
// or PUT.
type Knob struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Help  string `json:"help,omitempty"`
}

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}

// route is one route of the API: a ServeMux pattern and its handler.
type route struct {
	pattern string
	handler http.HandlerFunc
}

// routes are the API's routes; the OpenAPI description lists each.
func routes(s *Server, a *api) []route {
	return []route{
		{"GET /api/v1/{$}", serveOpenAPI},
		{"GET /api/v1/openapi.json", serveOpenAPI},
		{"GET /api/v1/access", s.accessHandler},
		{"GET /api/v1/tree", a.tree},
		{"GET /api/v1/tree/{path...}", a.tree},
		{"GET /api/v1/values/{path...}", a.getValue},
		{"PUT /api/v1/values/{path...}", a.putValue},
		{"GET /api/v1/knobs", a.listKnobs},
		{"GET /api/v1/knobs/{name...}", a.getKnob},
		{"PUT /api/v1/knobs/{name...}", a.putKnob},
	}
}

func (a *api) tree(w http.ResponseWriter, r *http.Request) {
	path := strings.Trim(r.PathValue("path"), "/")
	src, base := findVisible(a.root, path)
	if src == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no source %q in the tree", path))
		return
	}
	var top *Source
	stack := map[string]*Source{}
	src.Walk(func(p string, labels []statsfs.Label, s *statsfs.Source) bool {
		full := join(path, p)
		out := describe(full, append(base[:len(base):len(base)], labels...), s)
		if top == nil {
			top = out
		} else {
			parent := top
			if i := strings.LastIndexByte(p, '/'); i >= 0 {
				parent = stack[p[:i]]
			}
			parent.Sources = append(parent.Sources, out)
		}
		stack[p] = out
		return true
	})
	writeJSON(w, http.StatusOK, top)
}

// findVisible follows path from root like Source.Find, with the instance
// labels on the way (the found source's included); nil when a source on
// the way is missing or hidden.
func findVisible(root *statsfs.Source, path string) (*statsfs.Source, []statsfs.Label) {
	cur := root
	if cur.Hidden() {
		return nil, nil
	}
	var labels []statsfs.Label
	for _, name := range strings.Split(path, "/") {
		if name == "" {
			continue
		}
		cur = cur.Subordinate(name)
		if cur == nil || cur.Hidden() {
			return nil, nil
		}
		if cur.Label() != "" {
			labels = append(labels, statsfs.Label{Name: cur.Label(), Value: cur.Name()})
		}
	}
	return cur, labels
}

func join(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "/" + b
}

// describe reads one source's values and controls.
func describe(path string, labels []statsfs.Label, s *statsfs.Source) *Source {
	out := &Source{Name: s.Name(), Path: path, Label: s.Label(), Values: []Value{}}
	if len(labels) > 0 {
		out.Labels = make(map[string]string, len(labels))
		for _, l := range labels {
			out.Labels[l.Name] = l.Value
		}
	}
	for _, ref := range s.Values() {
		if ref.Hidden() {
			continue
		}
		d := ref.Value()
		rd := ref.Read()
		v := Value{
			Name:  d.Name,
			Value: number(rd),
			Text:  strings.TrimSuffix(d.Text(rd), "\n"),
			Type:  d.Type.String(),
			Unit:  d.Unit,
			Flag:  "cumulative",
			Mode:  fmt.Sprintf("%04o", uint32(d.Mode().Perm())),
			Help:  d.Help,
		}
		if d.Flag&statsfs.Floating != 0 {
			v.Flag = "floating"
		}
		if ref.Aggregate() {
			v.Aggregate = d.Aggr.String()
		}
		out.Values = append(out.Values, v)
	}
	for _, c := range s.Controls() {
		text := ""
		if c.Read != nil {
			text = c.Read()
		}
		out.Controls = append(out.Controls, Control{
			Name: c.Name, Help: c.Help,
			Mode: fmt.Sprintf("%04o", uint32(c.Mode().Perm())),
			Text: text,
		})
	}
	return out
}

// number is a reading as a JSON value: an exact decimal, a string for
// the floats JSON has no number for, or null for an absent value.
func number(r statsfs.Reading) json.RawMessage {
	if r.Absent {
		return json.RawMessage("null")
	}
	if r.Type == statsfs.F64 {
		f := r.Float64()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return json.RawMessage(strconv.Quote(strconv.FormatFloat(f, 'g', -1, 64)))
		}
	}
	return json.RawMessage(r.String())
}

func (a *api) listKnobs(w http.ResponseWriter, _ *http.Request) {
	out := []Knob{}
	for _, p := range a.knobs.Paths() {
		if k := a.knobs.Lookup(p); k != nil {
			out = append(out, Knob{Name: p, Value: k.Get(), Help: k.Help})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// knob finds the knob the request names, or answers 404.
func (a *api) knob(w http.ResponseWriter, r *http.Request) (string, *knob.Knob) {
	name := strings.Trim(r.PathValue("name"), "/")
	k := a.knobs.Lookup(name)
	if k == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no knob %q (GET /api/v1/knobs lists them)", name))
	}
	return name, k
}

func (a *api) getKnob(w http.ResponseWriter, r *http.Request) {
	if name, k := a.knob(w, r); k != nil {
		writeJSON(w, http.StatusOK, Knob{Name: name, Value: k.Get(), Help: k.Help})
	}
}

// putKnob sets a knob to the request body, validated as the knob's control
// file validates a write: bad input gives 400 with the knob's error and
// leaves the old setting.
func (a *api) putKnob(w http.ResponseWriter, r *http.Request) {
	name, k := a.knob(w, r)
	if k == nil {
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	if !a.setKnob(w, r, name, body) {
		return
	}
	writeJSON(w, http.StatusOK, Knob{Name: name, Value: k.Get(), Help: k.Help})
}

// setKnob sets the knob through the registry, which logs it, and answers
// an error; it reports whether the knob took the value.
func (a *api) setKnob(w http.ResponseWriter, r *http.Request, name, text string) bool {
	err := a.knobs.Set(name, text, via(r))
	switch {
	case errors.Is(err, statsfs.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
		return false
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return false
	}
	return true
}

// readBody reads the request body, answering 413 or 400 when it cannot.
func readBody(w http.ResponseWriter, r *http.Request) (string, bool) {
	body, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", tooBig.Limit))
		return "", false
	case err != nil:
		writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return "", false
	}
	return string(body), true
}

// via names who made a request and how, for the log.
func via(r *http.Request) string {
	if p, ok := peerFrom(r.Context()); ok {
		return fmt.Sprintf("socket uid %d pid %d", p.uid, p.pid)
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if u, _, ok := r.BasicAuth(); ok {
		return fmt.Sprintf("%s user %s from %s", scheme, u, r.RemoteAddr)
	}
	return scheme + " from " + r.RemoteAddr
}

// Entry is one file of the tree, as GET /api/v1/values/{path} gives it: a
// value or a control, with the text its file reads.
type Entry struct {
	Path string `json:"path"`
	Kind string `json:"kind"` // "value" or "control"
	// Text is what the file reads, with its newline(s).
	Text string `json:"text"`
	// Value is the number of a value, as in GET /api/v1/tree.
	Value json.RawMessage `json:"value,omitempty"`
	Type  string          `json:"type"` // u64, s32, bool, f64, ... or "control"
	Unit  string          `json:"unit,omitempty"`
	Mode  string          `json:"mode"` // file mode: 0644 writable, 0444 read-only
	Help  string          `json:"help,omitempty"`
}

// entry finds the value or control at path; ok false when there is none.
func (a *api) entry(path string) (ref statsfs.ValueRef, c *statsfs.Control, ok bool) {
	dir, name := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir, name = path[:i], path[i+1:]
	}
	src, _ := findVisible(a.root, dir)
	if src == nil || name == "" {
		return ref, nil, false
	}
	for _, v := range src.Values() {
		if !v.Hidden() && v.Value().Name == name {
			return v, nil, true
		}
	}
	if c := src.Control(name); c != nil {
		return ref, c, true
	}
	return ref, nil, false
}

func (a *api) getValue(w http.ResponseWriter, r *http.Request) {
	path := strings.Trim(r.PathValue("path"), "/")
	ref, c, ok := a.entry(path)
	switch {
	case !ok:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no value or control %q in the tree (GET /api/v1/tree lists them)", path))
	case c != nil:
		text := ""
		if c.Read != nil {
			text = c.Read()
		}
		writeJSON(w, http.StatusOK, Entry{Path: path, Kind: "control", Text: text, Type: "control",
			Mode: fmt.Sprintf("%04o", uint32(c.Mode().Perm())), Help: c.Help})
	default:
		d := ref.Value()
		rd := ref.Read()
		writeJSON(w, http.StatusOK, Entry{Path: path, Kind: "value", Text: d.Text(rd), Value: number(rd),
			Type: d.Type.String(), Unit: d.Unit, Mode: fmt.Sprintf("%04o", uint32(d.Mode().Perm())), Help: d.Help})
	}
}

// putValue writes a file of the tree as the mount does: a control takes
// the text (a knob through the registry, which validates and logs it), a
// cumulative value takes 0, which clears it.
func (a *api) putValue(w http.ResponseWriter, r *http.Request) {
	path := strings.Trim(r.PathValue("path"), "/")
	ref, c, ok := a.entry(path)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no value or control %q in the tree (GET /api/v1/tree lists them)", path))
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	text := strings.TrimSpace(body)
	switch {
	case c != nil && a.knobs.Lookup(path) != nil:
		if !a.setKnob(w, r, path, text) {
			return
		}
	case c != nil:
		if c.Write == nil {
			w.Header().Set("Allow", "GET")
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is a read-only control", path))
			return
		}
		if err := c.Write(text); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, statsfs.ErrInvalid) {
				code = http.StatusBadRequest
			}
			writeError(w, code, err.Error())
			return
		}
		a.log.Info("control written", "path", path, "via", via(r))
	default:
		if ref.Value().Mode()&0o222 == 0 {
			w.Header().Set("Allow", "GET")
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is read-only (mode 0444): a gauge or a kernel counter cannot be cleared", path))
			return
		}
		if n, err := strconv.ParseInt(text, 0, 64); err != nil || n != 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s: only 0 (to clear the value) may be written, not %q", path, text))
			return
		}
		if err := ref.Clear(); err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		a.log.Info("counter cleared", "path", path, "via", via(r))
	}
	a.getValue(w, r)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away: nothing to do
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, Error{Error: msg})
}

// openAPI is the API's OpenAPI description, served at /api/v1/.
//
//go:embed openapi.json
var openAPI []byte

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}
