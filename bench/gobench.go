package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// benchPackages lists the packages that have Go benchmarks, bench/ aside.
func (h *harness) benchPackages() ([]string, error) {
	set := map[string]bool{}
	err := filepath.WalkDir(h.repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != h.repo && (strings.HasPrefix(n, ".") || n == "testdata" || n == "bench" || n == "web") {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), "\nfunc Benchmark") {
			rel, _ := filepath.Rel(h.repo, filepath.Dir(p))
			set["./"+filepath.ToSlash(rel)] = true
		}
		return nil
	})
	var pkgs []string
	for p := range set {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	return pkgs, err
}

// goBenchmarks runs every Go benchmark of the tree with -benchmem and keeps
// the output as benchstat reads it.
func (h *harness) goBenchmarks() error {
	pkgs, err := h.benchPackages()
	if err != nil {
		return err
	}
	if len(pkgs) == 0 {
		return errors.New("no package has a Go benchmark yet")
	}
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem",
		"-count", fmt.Sprint(h.cfg.benchCount), "-benchtime", h.cfg.benchTime, "-timeout", "8m"}, pkgs...)
	out, err := h.command("go", args...).CombinedOutput()
	path := filepath.Join(h.cfg.outDir, "benchmarks.txt")
	if werr := os.WriteFile(path, out, 0o644); werr != nil {
		h.logf("writing %s: %v", path, werr)
	}
	lines := medianBench(parseBench(string(out)))
	var tbl strings.Builder
	tbl.WriteString("| benchmark | time/op | B/op | allocs/op | other metrics |\n|---|---|---|---|---|\n")
	for _, l := range lines {
		fmt.Fprintf(&tbl, "| %s | %s | %s | %s | %s |\n", l.name, durNs(l.nsPerOp), num(l.bPerOp), num(l.allocs), dash(l.extra))
	}
	h.detail(fmt.Sprintf("Go benchmarks, median of -count %d (raw output for benchstat in %s)", h.cfg.benchCount, path),
		fmt.Sprintf("`go %s`\n\n%s\n<details><summary>raw output</summary>\n\n```\n%s\n```\n</details>", strings.Join(args, " "), tbl.String(), strings.TrimSpace(string(out))))
	h.measured("go", fmt.Sprintf("Go benchmarks of %s", strings.Join(pkgs, " ")), fmt.Sprintf("%d benchmarks, see below", len(lines)), "", true)
	if err != nil {
		return fmt.Errorf("go test -bench: %v\n%s", err, lastLines(out, 10))
	}
	return nil
}

func num(v float64) string {
	if v < 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", v)
}
