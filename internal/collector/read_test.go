package collector

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestParseUint(t *testing.T) {
	for _, x := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true}, {"42", 42, true}, {"18446744073709551615", 1<<64 - 1, true},
		{"18446744073709551616", 0, false}, {"99999999999999999999", 0, false},
		{"", 0, false}, {"-1", 0, false}, {"12a", 0, false}, {" 1", 0, false}, {"+1", 0, false},
	} {
		got, ok := ParseUint([]byte(x.in))
		if got != x.want || ok != x.ok {
			t.Errorf("ParseUint(%q) = %d, %v; want %d, %v", x.in, got, ok, x.want, x.ok)
		}
	}
	if n := testing.AllocsPerRun(100, func() { ParseUint([]byte("1234567")) }); n != 0 {
		t.Errorf("ParseUint allocates %v times", n)
	}
}

// FuzzParseUint checks ParseUint against strconv on digit strings.
func FuzzParseUint(f *testing.F) {
	for _, s := range []string{"0", "18446744073709551615", "18446744073709551616", "", "1x", "007"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseUint([]byte(s))
		want, err := strconv.ParseUint(s, 10, 64)
		digits := s != "" && bytes.Trim([]byte(s), "0123456789") == nil
		if wantOK := err == nil && digits; ok != wantOK || (ok && got != want) {
			t.Fatalf("ParseUint(%q) = %d, %v; strconv: %d, %v", s, got, ok, want, err)
		}
	})
}

func TestNextFieldAndLine(t *testing.T) {
	b := []byte("  a\tbb  c\nsecond")
	line, rest := NextLine(b)
	if string(line) != "  a\tbb  c" || string(rest) != "second" {
		t.Fatalf("NextLine: %q %q", line, rest)
	}
	var got []string
	for f, r := NextField(line); len(f) > 0; f, r = NextField(r) {
		got = append(got, string(f))
	}
	if len(got) != 3 || got[0] != "a" || got[1] != "bb" || got[2] != "c" {
		t.Fatalf("NextField: %q", got)
	}
	if l, r := NextLine([]byte("last")); string(l) != "last" || r != nil {
		t.Fatalf("NextLine on a last line: %q %q", l, r)
	}
}

func TestReadFileGrowsAndReuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	want := bytes.Repeat([]byte("0123456789"), 1000)
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path, make([]byte, 0, 16))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadFile: %d bytes, %v", len(got), err)
	}
	again, err := ReadFile(path, got)
	if err != nil || !bytes.Equal(again, want) || &again[0] != &got[0] {
		t.Fatalf("ReadFile did not reuse a large enough buffer (err %v)", err)
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "none"), nil); !os.IsNotExist(err) {
		t.Fatalf("ReadFile of a missing file: %v", err)
	}
}

// waitMaxAge sleeps past the refresh cache, so the next read rereads.
func waitMaxAge() { time.Sleep(MaxAge + 10*time.Millisecond) }
