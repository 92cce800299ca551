// Package host holds the checks of testutil that need no BPF library:
// root and FUSE. The public statsfs packages' tests use it, so that a
// module importing statsfs does not get kstat's BPF and test dependencies
// in its go.sum. Other tests use testutil, which wraps these.
package host

import (
	"os"
	"testing"
)

// RequireRoot skips the test with the reason when it does not run as root.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root privileges (CAP_SYS_ADMIN, CAP_BPF, CAP_NET_ADMIN)")
	}
}

// RequireFUSE skips the test unless it runs as root with /dev/fuse present.
func RequireFUSE(tb testing.TB) {
	tb.Helper()
	RequireRoot(tb)
	if _, err := os.Stat("/dev/fuse"); err != nil {
		tb.Skipf("kernel FUSE support missing: %v", err)
	}
}
