package netns_test

import (
	"errors"
	"os"
	"testing"

	"github.com/kstat/kstat/internal/netns"
	"github.com/kstat/kstat/internal/testutil"
	"golang.org/x/sys/unix"
)

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestDoJoinsAndLeaves checks that fn runs in the target namespace and
// that no thread of the process, the main thread included, stays there.
func TestDoJoinsAndLeaves(t *testing.T) {
	ns := testutil.NewNetNS(t)
	target := nsInode(t, ns.Path)
	own := nsInode(t, "/proc/self/ns/net")
	if own == target {
		t.Fatal("the new namespace is the test's own")
	}
	for i := 0; i < 50; i++ {
		if err := netns.Do(ns.Path, func() error {
			if got := nsInode(t, "/proc/thread-self/ns/net"); got != target {
				t.Errorf("fn ran in namespace %d, want %d", got, target)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Every thread of the process must be back home.
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if got := nsInode(t, "/proc/self/task/"+task.Name()+"/ns/net"); got != own {
			t.Errorf("thread %s is left in namespace %d", task.Name(), got)
		}
	}
}

func TestDoErrors(t *testing.T) {
	testutil.RequireRoot(t)
	ns := testutil.NewNetNS(t)
	want := errors.New("from fn")
	if err := netns.Do(ns.Path, func() error { return want }); !errors.Is(err, want) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	if err := netns.Do("/proc/self/status", func() error { return nil }); err == nil {
		t.Error("Do accepted a file that is no namespace")
	}
	if err := netns.Do("/nonexistent/ns", func() error { return nil }); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Do on a missing file: %v", err)
	}
}
