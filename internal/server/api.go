package server

import (
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
	body, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", tooBig.Limit))
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return
	}
	err = k.Set(string(body))
	switch {
	case errors.Is(err, statsfs.ErrInvalid):
		a.log.Warn("knob write refused", "knob", name, "err", err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		a.log.Error("knob write failed", "knob", name, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	a.log.Info("knob set", "knob", name, "value", k.Get())
	writeJSON(w, http.StatusOK, Knob{Name: name, Value: k.Get(), Help: k.Help})
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
