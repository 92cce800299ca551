package mountinfo

import (
	"strings"
	"testing"
)

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		"/sys/fs/cgroup":       "/sys/fs/cgroup",
		`/mnt/a\040b`:          "/mnt/a b",
		`/t\011ab\012nl\134bs`: "/t\tab\nnl\\bs",
		`/end\04`:              `/end\04`,
		`/not\999octal`:        `/not\999octal`,
		`\040`:                 " ",
		`/trailing\`:           `/trailing\`,
		`/x\400`:               `/x\400`, // past a byte
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzUnescape(f *testing.F) {
	f.Add(`/mnt/a\040b`)
	f.Add(`\`)
	f.Fuzz(func(t *testing.T, s string) {
		got := Unescape(s)
		if !strings.Contains(s, `\`) && got != s {
			t.Fatalf("Unescape(%q) = %q changed a string without escapes", s, got)
		}
		if len(got) > len(s) {
			t.Fatalf("Unescape(%q) = %q is longer", s, got)
		}
	})
}
