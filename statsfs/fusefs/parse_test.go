package fusefs

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestIsZero(t *testing.T) {
	for text, want := range map[string]bool{
		"0": true, "00": true, "000": true, "0x0": true, "0X000": true, "-0": true, "+0": true, "0x00000000": true,
		"1": false, "": false, "0x": false, "08": false, "0_0": false, "0o0": false, "0b0": false,
		"--0": false, "+-0": false, "0 0": false, "0.0": false, "0x1": false, "abc": false, "-": false, "x0": false,
	} {
		if got := isZero(text); got != want {
			t.Errorf("isZero(%q) = %v, want %v", text, got, want)
		}
	}
}

// FuzzIsZero checks isZero against strconv.ParseInt with base 0, which
// reads C's strtoll syntax plus 0b, 0o and underscores.
func FuzzIsZero(f *testing.F) {
	for _, s := range []string{"0", "0x0", "-00", "08", "0x", "1", "+0X0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := isZero(s)
		if strings.ContainsAny(s, "_oObB") {
			if got {
				t.Errorf("isZero(%q) accepted Go-only syntax", s)
			}
			return
		}
		v, err := strconv.ParseInt(s, 0, 64)
		if want := err == nil && v == 0; got != want {
			t.Errorf("isZero(%q) = %v, ParseInt gives %d, %v", s, got, v, err)
		}
	})
}

func TestMountedInFixture(t *testing.T) {
	for dir, want := range map[string]string{
		"/":                   "ext4",
		"/tmp/with space/mnt": "fuse.statsfs",
		"/run/kstat":          "tmpfs", // the topmost mount wins
		`/back\slash`:         "tmpfs",
		"/nope":               "",
	} {
		f, err := os.Open("testdata/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		typ, ok := mountedIn(f, dir)
		f.Close()
		if typ != want || ok != (want != "") {
			t.Errorf("%s: %q %v, want %q", dir, typ, ok, want)
		}
	}
}

// escapeMount escapes a path as the kernel does in mountinfo.
func escapeMount(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case ' ', '\t', '\n', '\\':
			b.WriteString(`\` + strconv.FormatInt(int64(c)+01000, 8)[1:])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add("/run/kstat", "fuse.statsfs")
	f.Add("/a b\\c\td", "ext4")
	f.Fuzz(func(t *testing.T, point, fstype string) {
		if point == "" || fstype == "" || strings.ContainsAny(fstype, " \t\n") {
			return
		}
		line := "36 35 98:0 / " + escapeMount(point) + " rw,noatime master:1 - " + fstype + " /dev/root rw"
		p, typ, ok := parseMountinfo(line)
		if !ok || p != point || typ != fstype {
			t.Errorf("%q: got %q %q %v", line, p, typ, ok)
		}
		parseMountinfo(point) // arbitrary text must not panic
	})
}
