// Package ksym symbolizes kernel addresses from /proc/kallsyms: an address
// becomes function+offset, with the module in brackets for module code.
package ksym

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// ErrHidden is returned when every address reads as zero: kallsyms hides
// them from readers without CAP_SYSLOG (or when kernel.kptr_restrict=2).
var ErrHidden = errors.New("ksym: kallsyms addresses are hidden (needs root privileges with CAP_SYSLOG, or kernel.kptr_restrict below 2)")

// Symbol is one text symbol.
type Symbol struct {
	Addr   uint64
	Name   string
	Module string // "" for the kernel image
}

// Table is a sorted set of text symbols.
type Table struct {
	syms []Symbol
}

// Load parses a kallsyms file, normally /proc/kallsyms.
func Load(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ksym: %w", err)
	}
	defer f.Close()
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("ksym: %s: %w", path, err)
	}
	return t, nil
}

// Parse reads kallsyms lines ("ffffffff81000000 T _stext", optionally
// followed by "\t[module]") and keeps the text (code) symbols.
func Parse(r io.Reader) (*Table, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var (
		t       Table
		line    int
		nonzero bool
	)
	for sc.Scan() {
		line++
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		sym, kind, err := parseLine(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if sym.Addr != 0 {
			nonzero = true
		}
		switch kind {
		case 't', 'T', 'w', 'W':
			t.syms = append(t.syms, sym)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if line > 0 && !nonzero {
		return nil, ErrHidden
	}
	sort.SliceStable(t.syms, func(i, j int) bool { return t.syms[i].Addr < t.syms[j].Addr })
	return &t, nil
}

func parseLine(text string) (Symbol, byte, error) {
	var mod string
	if i := strings.IndexByte(text, '\t'); i >= 0 {
		mod = strings.TrimSpace(text[i+1:])
		text = text[:i]
		if len(mod) < 2 || mod[0] != '[' || mod[len(mod)-1] != ']' {
			return Symbol{}, 0, fmt.Errorf("module %q is not in brackets", mod)
		}
		mod = mod[1 : len(mod)-1]
	}
	f := strings.Fields(text)
	if len(f) != 3 || len(f[1]) != 1 {
		return Symbol{}, 0, fmt.Errorf("%q is not \"address type name\"", text)
	}
	addr, err := strconv.ParseUint(f[0], 16, 64)
	if err != nil {
		return Symbol{}, 0, fmt.Errorf("address %q: %w", f[0], err)
	}
	return Symbol{Addr: addr, Name: f[2], Module: mod}, f[1][0], nil
}

// Len is the number of text symbols.
func (t *Table) Len() int { return len(t.syms) }

// Lookup returns the symbol that contains addr (the last one at or below
// it) and addr's offset into it; ok is false below the first symbol.
func (t *Table) Lookup(addr uint64) (sym Symbol, off uint64, ok bool) {
	i := sort.Search(len(t.syms), func(i int) bool { return t.syms[i].Addr > addr })
	if i == 0 {
		return Symbol{}, 0, false
	}
	s := t.syms[i-1]
	return s, addr - s.Addr, true
}

// Format gives addr as "name+0xoff", "name+0xoff [module]", or the bare
// hex address when no symbol covers it.
func (t *Table) Format(addr uint64) string {
	s, off, ok := t.Lookup(addr)
	if !ok {
		return fmt.Sprintf("0x%x", addr)
	}
	out := fmt.Sprintf("%s+0x%x", s.Name, off)
	if s.Module != "" {
		out += " [" + s.Module + "]"
	}
	return out
}
