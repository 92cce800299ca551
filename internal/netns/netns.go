// Package netns runs code inside another network namespace.
package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread that has joined the network namespace at path
// (like /run/netns/NAME or /proc/PID/ns/net). Sockets and netfilter links
// that fn creates belong to that namespace. Afterwards the thread returns
// to its own namespace before other goroutines may use it; if that fails
// the thread is thrown away. Restoring matters: when the thread is the
// process's main thread, Go cannot end it, and /proc/self/net follows the
// main thread's namespace.
func Do(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- doLocked(path, fn)
	}()
	return <-errc
}

// doLocked runs on a locked thread and unlocks it only once the thread is
// back in its original namespace.
func doLocked(path string, fn func() error) error {
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return fmt.Errorf("network namespace of this thread: %w", err)
	}
	defer self.Close()
	target, err := os.Open(path)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("network namespace: %w", err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		switch {
		case errors.Is(err, unix.EINVAL):
			return fmt.Errorf("%s is not a network namespace file (like /run/netns/NAME or /proc/PID/ns/net): %w", path, err)
		case errors.Is(err, unix.EPERM):
			return fmt.Errorf("joining network namespace %s needs CAP_SYS_ADMIN (root): %w", path, err)
		}
		return fmt.Errorf("joining network namespace %s: %w", path, err)
	}
	ferr := fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err == nil {
		runtime.UnlockOSThread()
	} // else the thread stays locked and exits with this goroutine
	return ferr
}
