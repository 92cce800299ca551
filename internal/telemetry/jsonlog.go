package telemetry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// LogOptions configure a JSON-lines log.
type LogOptions struct {
	Path string
	// MaxSize rotates the file before a line would take it past this many
	// bytes; 0 never rotates.
	MaxSize int64
	// Keep is how many rotated files to keep: Path.1 (the newest) to
	// Path.Keep. With 0 a full file is removed.
	Keep int
}

// JSONLog appends one JSON object per snapshot to a file, one line each.
// Each line goes out in a single write(2) on a file opened with O_APPEND,
// so a process killed at any moment leaves whole lines only.
type JSONLog struct {
	opts LogOptions

	mu   sync.Mutex
	f    *os.File
	size int64
}

// OpenJSONLog opens (creating if needed) the log for appending.
func OpenJSONLog(opts LogOptions) (*JSONLog, error) {
	if opts.MaxSize < 0 || opts.Keep < 0 {
		return nil, fmt.Errorf("JSON log %s: negative size or keep count", opts.Path)
	}
	l := &JSONLog{opts: opts}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *JSONLog) open() error {
	f, err := os.OpenFile(l.opts.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("opening the JSON log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("JSON log: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("JSON log %s is not a regular file", l.opts.Path)
	}
	l.f, l.size = f, st.Size()
	return nil
}

// Write appends s as one line, rotating first when the line would pass
// MaxSize.
func (l *JSONLog) Write(s Snapshot) error {
	line, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("JSON log: %w", err)
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return fmt.Errorf("JSON log %s: %w", l.opts.Path, fs.ErrClosed)
	}
	if l.opts.MaxSize > 0 && l.size > 0 && l.size+int64(len(line)) > l.opts.MaxSize {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	return l.writeLine(line)
}

// writeLine is one write(2) of the whole line.
func (l *JSONLog) writeLine(line []byte) error {
	rc, err := l.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("JSON log: %w", err)
	}
	var n int
	var werr error
	if err := rc.Write(func(fd uintptr) bool {
		n, werr = unix.Write(int(fd), line)
		return werr != unix.EAGAIN
	}); err != nil {
		return fmt.Errorf("JSON log: %w", err)
	}
	if werr != nil {
		return fmt.Errorf("writing the JSON log %s: %w", l.opts.Path, werr)
	}
	if n > 0 && n != len(line) {
		// A full disk took part of the line: cut it off, so the log
		// goes on with whole lines when space returns.
		if err := l.f.Truncate(l.size); err != nil {
			l.size += int64(n)
			return fmt.Errorf("writing the JSON log %s: short write of %d of %d bytes, not cut off: %w", l.opts.Path, n, len(line), err)
		}
		return fmt.Errorf("writing the JSON log %s: short write of %d of %d bytes (cut off)", l.opts.Path, n, len(line))
	}
	l.size += int64(n)
	return nil
}

// rotate shifts Path.i to Path.i+1, dropping the last, moves Path to
// Path.1 and opens a new Path.
func (l *JSONLog) rotate() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("JSON log: %w", err)
	}
	l.f = nil
	p := l.opts.Path
	var err error
	if l.opts.Keep == 0 {
		err = os.Remove(p)
	} else {
		err = os.Remove(fmt.Sprintf("%s.%d", p, l.opts.Keep))
		for i := l.opts.Keep - 1; i >= 1 && (err == nil || errors.Is(err, fs.ErrNotExist)); i-- {
			err = os.Rename(fmt.Sprintf("%s.%d", p, i), fmt.Sprintf("%s.%d", p, i+1))
		}
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			err = os.Rename(p, p+".1")
		}
	}
	// Reopen whatever happened: if the rename failed, the log goes on in
	// the old file.
	if oerr := l.open(); oerr != nil {
		return oerr
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rotating the JSON log: %w", err)
	}
	return nil
}

// Close closes the file.
func (l *JSONLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
