package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kstat/kstat/internal/promtest"
	"github.com/kstat/kstat/internal/testutil"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// kstatBinary builds cmd/kstat once per test run.
func kstatBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kstat-deploy-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "kstat")
		if out, err := exec.Command("go", "build", "-o", binPath, "../cmd/kstat").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building kstat: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// serveFlags are the long flags "kstat serve --help" lists, global ones
// included.
func serveFlags(t *testing.T) map[string]bool {
	out, err := exec.Command(kstatBinary(t), "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("kstat serve --help: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([\w.-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["listen"] || !flags["proc"] {
		t.Fatalf("kstat serve --help lists no --listen or --proc:\n%s", out)
	}
	return flags
}

// yamlDocs decodes every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, doc)
	}
}

// at walks a decoded YAML tree by map keys and list indexes.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func TestKubernetesManifests(t *testing.T) {
	flags := serveFlags(t)
	files, _ := filepath.Glob("kubernetes/*.yaml")
	if len(files) < 3 {
		t.Fatalf("kubernetes/ has %d manifests", len(files))
	}
	kinds := map[string]int{}
	for _, file := range files {
		for _, doc := range yamlDocs(t, file) {
			kind, _ := doc["kind"].(string)
			if kind == "" || doc["apiVersion"] == nil {
				t.Errorf("%s: a document without kind or apiVersion", file)
			}
			kinds[kind]++
			if kind != "DaemonSet" {
				continue
			}
			containers, _ := at(doc, "spec", "template", "spec", "containers").([]any)
			for _, c := range containers {
				args, _ := at(c, "args").([]any)
				if len(args) == 0 || args[0] != "serve" {
					t.Errorf("%s: container args %v do not start with serve", file, args)
				}
				for _, a := range args[1:] {
					s, _ := a.(string)
					name, _, _ := strings.Cut(strings.TrimPrefix(s, "--"), "=")
					if !strings.HasPrefix(s, "--") || !flags[name] {
						t.Errorf("%s: argument %q is not a flag of kstat serve", file, s)
					}
				}
				if filepath.Base(file) == "kstat.yaml" {
					checkDaemonSet(t, file, doc, c)
				}
			}
			if filepath.Base(file) == "fuse-mount.yaml" {
				mounts, _ := at(containers, 0, "volumeMounts").([]any)
				if !slices.ContainsFunc(mounts, func(m any) bool { return at(m, "mountPropagation") == "Bidirectional" }) {
					t.Errorf("%s: no Bidirectional mount", file)
				}
			}
		}
	}
	for _, k := range []string{"DaemonSet", "Service", "ServiceMonitor"} {
		if kinds[k] == 0 {
			t.Errorf("no %s in kubernetes/", k)
		}
	}
}

// checkDaemonSet checks the unprivileged DaemonSet: capabilities instead
// of privileged, the host's /proc, /sys and BTF, probes on /healthz.
func checkDaemonSet(t *testing.T, file string, doc map[string]any, c any) {
	if p := at(c, "securityContext", "privileged"); p != false {
		t.Errorf("%s: privileged is %v, want false", file, p)
	}
	if d, _ := at(c, "securityContext", "capabilities", "drop").([]any); !slices.Contains(d, any("ALL")) {
		t.Errorf("%s: capabilities do not drop ALL", file)
	}
	add, _ := at(c, "securityContext", "capabilities", "add").([]any)
	for _, want := range []string{"BPF", "PERFMON", "NET_ADMIN"} {
		if !slices.Contains(add, any(want)) {
			t.Errorf("%s: capability %s not added", file, want)
		}
	}
	for _, probe := range []string{"livenessProbe", "readinessProbe"} {
		if p := at(c, probe, "httpGet", "path"); p != "/healthz" {
			t.Errorf("%s: %s path %v", file, probe, p)
		}
	}
	volumes, _ := at(doc, "spec", "template", "spec", "volumes").([]any)
	var hostPaths []string
	for _, v := range volumes {
		if p, ok := at(v, "hostPath", "path").(string); ok {
			hostPaths = append(hostPaths, p)
		}
	}
	for _, want := range []string{"/proc", "/sys", "/sys/kernel/btf"} {
		if !slices.Contains(hostPaths, want) {
			t.Errorf("%s: no hostPath %s (have %v)", file, want, hostPaths)
		}
	}
}

// familyNames are the metric names a /metrics exposition holds: each
// family's name, and the _bucket/_sum/_count/_created series of
// histograms and summaries.
func familyNames(text string) map[string]bool {
	names := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		names[name] = true
	}
	return names
}

// startKstat runs "kstat serve" without a mount, with KSTAT and the tracer
// on and pushing OTLP, so that every family the rules name is live.
func startKstat(t *testing.T, addr, otlpURL string) {
	t.Helper()
	var log bytes.Buffer
	var mu sync.Mutex
	cmd := exec.Command(kstatBinary(t), "serve", "--mount=", "--listen", addr,
		"--kstat-start", "--tracer", "--otlp.endpoint", otlpURL, "--otlp.interval", "1s")
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return log.Write(p) })
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // may have exited
		cmd.Wait()                          //nolint:errcheck // the log says why
		if t.Failed() {
			mu.Lock()
			t.Logf("kstat log:\n%s", log.String())
			mu.Unlock()
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// get waits for a 200 answer from url and returns its body.
func get(t *testing.T, url string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(body)
			}
			err = fmt.Errorf("%s: %s", resp.Status, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// rulesFile is the shape of a Prometheus rules file.
type rulesFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record string `yaml:"record"`
			Alert  string `yaml:"alert"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// grafanaVars replaces the dashboard's Grafana variables with values
// PromQL accepts.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s", "$instance", ".*", "${instance}", ".*")

// TestRulesAndDashboard runs kstat and a real Prometheus that scrapes it
// with deploy/prometheus's rules and receives its OTLP push: promtool
// accepts the configuration and the rules, Prometheus evaluates every rule
// without error, and every expression of the rules and of the Grafana
// dashboard parses and names only metric families of a live scrape.
func TestRulesAndDashboard(t *testing.T) {
	testutil.RequireRoot(t)
	promtool := promtest.Bin(t, "promtool")
	for _, args := range [][]string{
		{"check", "config", "--syntax-only", "prometheus/prometheus.yml"},
		{"check", "rules", "prometheus/kstat.rules.yml"},
	} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	rules, err := os.ReadFile("prometheus/kstat.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kstat.rules.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	kstatAddr := fmt.Sprintf("127.0.0.1:%d", promtest.FreePort(t))
	prom := promtest.Start(t, `
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["`+filepath.Join(dir, "kstat.rules.yml")+`"]
otlp:
  translation_strategy: NoTranslation
scrape_configs:
  - job_name: kstat
    static_configs:
      - targets: ["`+kstatAddr+`"]
`, "--web.enable-otlp-receiver")
	startKstat(t, kstatAddr, prom.URL+"/api/v1/otlp/v1/metrics")
	if h := get(t, "http://"+kstatAddr+"/healthz"); h == "" {
		t.Error("/healthz answered nothing")
	}
	prom.WaitQuery(t, `kstat_otlp_pushes_total{job="kstat"} > 0`, 30*time.Second)
	live := familyNames(get(t, "http://"+kstatAddr+"/metrics"))

	var rf rulesFile
	if err := yaml.Unmarshal(rules, &rf); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"up": true} // Prometheus adds it to every scrape
	type expr struct{ where, text string }
	var exprs []expr
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				known[r.Record] = true
			}
			exprs = append(exprs, expr{g.Name + "/" + r.Record + r.Alert, r.Expr})
		}
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	raw, err := os.ReadFile("grafana/kstat.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana/kstat.json: %v", err)
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			exprs = append(exprs, expr{"dashboard/" + p.Title, grafanaVars.Replace(q.Expr)})
		}
	}
	for _, v := range dash.Templating.List {
		// label_values(METRIC, LABEL) is Grafana's, not PromQL: its metric.
		if m := regexp.MustCompile(`^label_values\((\w+),`).FindStringSubmatch(v.Definition); m != nil {
			exprs = append(exprs, expr{"dashboard/variable " + v.Name, m[1]})
		}
	}

	for _, e := range exprs {
		sels, err := prom.ParseQuery(e.text)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", e.where, e.text, err)
			continue
		}
		if len(sels) == 0 {
			t.Errorf("%s: %q selects no metric", e.where, e.text)
		}
		for _, s := range sels {
			switch {
			case s.Name != "":
				if !live[s.Name] && !known[s.Name] {
					t.Errorf("%s: %s is not a family of a live scrape", e.where, s.Name)
				}
			case s.Regex != "":
				re := regexp.MustCompile("^(?:" + s.Regex + ")$")
				if !slices.ContainsFunc(mapKeys(live), re.MatchString) {
					t.Errorf("%s: no live family matches %s", e.where, s.Regex)
				}
			}
		}
	}
	t.Logf("%d expressions checked against %d live metric names", len(exprs), len(live))

	// Prometheus evaluated every rule without error.
	deadline := time.Now().Add(30 * time.Second)
	for {
		bad, n := ruleHealth(t, prom.URL)
		if n > 0 && len(bad) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rules not healthy after 30s (%d loaded): %v", n, bad)
		}
		time.Sleep(time.Second)
	}
}

func mapKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// ruleHealth returns the rules Prometheus did not evaluate as "ok" (with
// their error) and how many rules it has.
func ruleHealth(t *testing.T, url string) (bad []string, n int) {
	body := get(t, url+"/api/v1/rules")
	var r struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	for _, g := range r.Data.Groups {
		for _, rule := range g.Rules {
			n++
			if rule.Health != "ok" {
				bad = append(bad, rule.Name+": "+rule.Health+" "+rule.LastError)
			}
		}
	}
	return bad, n
}
