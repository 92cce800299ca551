// Package fusefs mounts a statsfs tree as a FUSE filesystem: a directory per
// visible source, a file per value, a file per control.
package fusefs

import (
	"errors"
	"log/slog"

	"github.com/kstat/kstat/statsfs"
)

// Options configure a mount.
type Options struct {
	// Log receives refused writes and mount events; nil discards them.
	Log *slog.Logger
}

// Server is a mounted tree.
type Server struct{}

// Mount mounts root at dir. PLACEHOLDER: being written.
func Mount(dir string, root *statsfs.Source, opts Options) (*Server, error) {
	return nil, errors.New("fusefs: not built yet")
}

// Unmount detaches the filesystem.
func (s *Server) Unmount() error { return nil }
