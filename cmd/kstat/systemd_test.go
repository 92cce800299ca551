package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"kernel.org/pub/linux/libs/security/libcap/cap"

	"github.com/kstat/kstat/internal/caps"
	"github.com/kstat/kstat/internal/testutil"
)

// exposureDocumented is the "systemd-analyze security" exposure of
// deploy/systemd/kstat.service that docs/SECURITY.md records.
const exposureDocumented = 2.8

// TestSystemdUnit checks deploy/systemd: systemd-analyze verify accepts
// the unit (with ExecStart pointing at the binary built for the test),
// its security exposure is the documented one or better, the unit gives
// the capabilities the daemon keeps by default as a non-root user, and
// the environment file's settings name only flags "kstat serve" accepts.
func TestSystemdUnit(t *testing.T) {
	testutil.RequireCommand(t, "systemd-analyze")
	unit, err := os.ReadFile(filepath.Join("..", "..", "deploy", "systemd", "kstat.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/kstat serve") {
		t.Fatal("ExecStart is not /usr/local/bin/kstat serve")
	}
	path := filepath.Join(t.TempDir(), "kstat.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/kstat", kstatBinary(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err := exec.Command("systemd-analyze", "security", "--offline=true", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for kstat.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if e, _ := strconv.ParseFloat(string(m[1]), 64); e > exposureDocumented {
		t.Errorf("exposure %v, docs/SECURITY.md records %v:\n%s", e, exposureDocumented, out)
	}

	directive := func(name string) []string {
		m := regexp.MustCompile(`(?m)^` + name + `=(.*)$`).FindSubmatch(unit)
		if m == nil {
			t.Fatalf("the unit has no %s=", name)
		}
		return strings.Fields(string(m[1]))
	}
	ambient := directive("AmbientCapabilities")
	if bound := directive("CapabilityBoundingSet"); strings.Join(bound, " ") != strings.Join(ambient, " ") {
		t.Errorf("CapabilityBoundingSet %v differs from AmbientCapabilities %v", bound, ambient)
	}
	var given caps.Set
	for _, name := range ambient {
		v, err := cap.FromName(strings.ToLower(name))
		if err != nil {
			t.Fatalf("AmbientCapabilities: %s: %v", name, err)
		}
		given = append(given, v)
	}
	for _, v := range caps.DefaultFor(65534, true) {
		if !given.Has(v) {
			t.Errorf("the unit does not give %s, which the daemon keeps by default", v)
		}
	}

	env, err := os.ReadFile(filepath.Join("..", "..", "deploy", "systemd", "kstat.env"))
	if err != nil {
		t.Fatal(err)
	}
	help, _, err := runKstat(t, "serve", "--help")
	if err != nil {
		t.Fatal(err)
	}
	var settings []string // the lines that are not comments
	for _, line := range strings.Split(string(env), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			settings = append(settings, line)
		}
	}
	for _, flag := range regexp.MustCompile(`--[a-z][a-z.-]+`).FindAllString(strings.Join(settings, "\n"), -1) {
		if !strings.Contains(help, "  "+flag+" ") && !strings.Contains(help, " "+flag+" ") {
			t.Errorf("kstat.env uses %s, which kstat serve --help does not list", flag)
		}
	}
}
