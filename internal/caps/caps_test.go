package caps

import (
	"strings"
	"testing"

	"kernel.org/pub/linux/libs/security/libcap/cap"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		mask uint64
	}{
		{"none", "none", 0},
		{"", "none", 0},
		{"cap_bpf,CAP_PERFMON", "cap_perfmon,cap_bpf", 1<<38 | 1<<39},
		{"bpf, bpf ,sys_admin", "cap_sys_admin,cap_bpf", 1<<21 | 1<<39},
	} {
		s, err := Parse(c.in, Default)
		if err != nil || s.String() != c.want || s.Mask() != c.mask {
			t.Errorf("Parse(%q) = %v (%x), %v; want %s (%x)", c.in, s, s.Mask(), err, c.want, c.mask)
		}
	}
	if _, err := Parse("cap_nonsense", Default); err == nil || !strings.Contains(err.Error(), "cap_nonsense") {
		t.Errorf("Parse(cap_nonsense): %v", err)
	}
	if s, _ := Parse("default", Default); s.Mask() != 0x000000c000200000 {
		t.Errorf("Parse(default) = %s", s)
	}
	if got := DefaultFor(0, true).Mask(); got != 0x000000c000200000 {
		t.Errorf("DefaultFor(root) = %x", got)
	}
	if got := DefaultFor(65534, false).Mask(); got != 0x000000c000200000 {
		t.Errorf("DefaultFor(65534, no slabinfo) = %x", got)
	}
	if got := DefaultFor(65534, true); !got.Has(cap.DAC_READ_SEARCH) || got.Mask() != 0x000000c000200004 {
		t.Errorf("DefaultFor(65534, slabinfo) = %s (%x)", got, got.Mask())
	}
}
