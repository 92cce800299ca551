package collector

import (
	"errors"
	"io/fs"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/statsfs"
)

// ErrMalformed is wrapped by every parse error of a kernel file, so callers
// can tell a file the kernel wrote unexpectedly from one they could not read.
var ErrMalformed = errors.New("malformed")

// ReadFile reads the whole file at path into buf, growing it as needed, and
// returns the filled slice (which aliases buf when buf was large enough).
// It uses one open and as few reads as the file needs, with no stat: /proc
// files report size 0. It calls open(2), read(2) and close(2) directly:
// an *os.File would also register the descriptor with the runtime's poller
// and set a finalizer, which costs more than reading a small /proc file.
// Keep the returned slice as the next call's buf to read without
// allocating. Errors are *fs.PathError, as os.Open's.
func ReadFile(path string, buf []byte) ([]byte, error) {
	fd, err := retryEINTR(func() (int, error) { return unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0) })
	if err != nil {
		return buf[:0], &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if cap(buf) == 0 {
		buf = make([]byte, 0, 4096)
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := retryEINTR(func() (int, error) { return unix.Read(fd, buf[len(buf):cap(buf)]) })
		if err != nil {
			return buf, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// retryEINTR calls f again while it fails with EINTR.
func retryEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != unix.EINTR {
			return n, err
		}
	}
}

// NextLine splits b at its first newline: line without the newline, and the
// rest after it. A last line without a newline is returned whole.
func NextLine(b []byte) (line, rest []byte) {
	for i, c := range b {
		if c == '\n' {
			return b[:i], b[i+1:]
		}
	}
	return b, nil
}

// NextField skips leading spaces and tabs and returns the run of other bytes
// that follows, and the rest of b after it. field is empty at the end.
func NextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	j := i
	for j < len(b) && b[j] != ' ' && b[j] != '\t' {
		j++
	}
	return b[i:j], b[j:]
}

// ParseUint parses an unsigned decimal number of up to 2^64-1. It reports
// false for an empty field, a non-digit, or a value that overflows, and never
// allocates.
func ParseUint(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// Child returns the subordinate of parent called name, adding an empty one
// first if there is none, so collectors that share a directory (net/, mm/)
// attach under the same source.
func Child(parent *statsfs.Source, name string) *statsfs.Source {
	childMu.Lock()
	defer childMu.Unlock()
	if c := parent.Subordinate(name); c != nil {
		return c
	}
	c := statsfs.NewSource("%s", name)
	parent.AddSubordinate(c)
	return c
}

// childMu makes Child's look-up and add one step.
var childMu sync.Mutex
