package ksym

import (
	"errors"
	"strings"
	"testing"

	"github.com/kstat/kstat/internal/testutil"
)

func TestLoadFixture(t *testing.T) {
	tab, err := Load(testutil.Fixture(t, "ksym", "kallsyms"))
	if err != nil {
		t.Fatal(err)
	}
	// 18 text symbols in the fixture; the three data symbols are left out.
	if tab.Len() != 18 {
		t.Errorf("Len = %d, want 18", tab.Len())
	}
	for _, c := range []struct {
		addr uint64
		want string
	}{
		{0xffffffff816c9bf0, "alloc_pipe_info+0x0"},
		{0xffffffff816c9c3f, "alloc_pipe_info+0x4f"},
		{0xffffffff816ca5b0 + 0x21, "do_pipe2+0x21"},
		{0xffffffff821ef691, "do_syscall_64+0x71"},
		{0xffffffffc0201010, "ftrace_trampoline+0x10 [__builtin__ftrace]"},
		{0xffffffff81000139, "syscall_return_via_sysret+0x1"},
		{0xffffffff80000000, "0xffffffff80000000"}, // below the first symbol
	} {
		if got := tab.Format(c.addr); got != c.want {
			t.Errorf("Format(%#x) = %q, want %q", c.addr, got, c.want)
		}
	}
	// Of the symbols sharing _stext's address, the last listed wins.
	if s, off, ok := tab.Lookup(0xffffffff81000001); !ok || s.Name != "__pi__text" || off != 1 {
		t.Errorf("Lookup(_stext+1) = %+v %d %v", s, off, ok)
	}
}

func TestHidden(t *testing.T) {
	_, err := Load(testutil.Fixture(t, "ksym", "kallsyms-hidden"))
	if !errors.Is(err, ErrHidden) {
		t.Fatalf("err = %v, want ErrHidden", err)
	}
	if !strings.Contains(err.Error(), "root") {
		t.Errorf("error %q does not say what privilege is missing", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"ffffffff81000000 T\n",
		"zzzz T name\n",
		"ffffffff81000000 TT name\n",
		"ffffffff81000000 t name\tmodule\n",
		"ffffffff81000000 t a b\n",
	} {
		if _, err := Parse(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("Parse(%q) err = %v, want a line 1 error", in, err)
		}
	}
}

func TestLiveKallsyms(t *testing.T) {
	testutil.RequireRoot(t)
	tab, err := Load("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	if tab.Len() < 1000 {
		t.Fatalf("only %d text symbols in /proc/kallsyms", tab.Len())
	}
	s, _, ok := tab.Lookup(tab.syms[tab.Len()/2].Addr + 1)
	if !ok || s.Name == "" {
		t.Fatalf("lookup in the middle failed: %+v", s)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("ffffffff81000000 T _stext\nffffffffc0201000 t ftrace_trampoline\t[__builtin__ftrace]\n")
	f.Add("0000000000000000 T x\n")
	f.Add("1 t a\n2 W b\t[m]\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		tab, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		for i := 1; i < tab.Len(); i++ {
			if tab.syms[i-1].Addr > tab.syms[i].Addr {
				t.Fatal("symbols not sorted")
			}
		}
		for _, s := range tab.syms {
			got, off, ok := tab.Lookup(s.Addr)
			if !ok || off != 0 || got.Addr != s.Addr {
				t.Fatalf("Lookup(%#x) = %+v %d %v", s.Addr, got, off, ok)
			}
			_ = tab.Format(s.Addr + 3)
		}
	})
}
