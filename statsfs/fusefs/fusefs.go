// Package fusefs mounts a statsfs tree as a FUSE filesystem: a directory per
// visible source, a file per value, a file per control.
//
// The mount reads the live tree: every lookup, listing and open asks the
// tree again, so sources added or removed after Mount appear and vanish. A
// value file prints its text (the decimal value and a newline, or the
// value's Show text), computed when the file is opened and opened with
// FOPEN_DIRECT_IO, so every open sees the value of that moment. Writing "0"
// to a clearable value (mode 0644) clears it; any other text gives EINVAL
// and a read-only file refuses to open for writing with EACCES, even for
// root. Control files hand what is written to Control.Write.
//
// Help, type, unit, aggregation and flag of a value are extended attributes
// (user.kstat.help, user.kstat.type, ...).
package fusefs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"kernel.org/pub/linux/libs/security/libcap/cap"

	"github.com/kstat/kstat/internal/caps"
	"github.com/kstat/kstat/statsfs"
)

// FsName is the mount's source name ("kstat" in /proc/mounts) and Type its
// filesystem type suffix: the mount shows as type fuse.statsfs.
const (
	FsName = "kstat"
	Type   = "statsfs"
)

// Options configure a mount.
type Options struct {
	// Log receives refused writes and mount events; nil discards them.
	Log *slog.Logger
	// Requests counts the mount's requests. Pass one to publish the
	// counts before the mount exists; nil makes a new one (see
	// Server.Requests).
	Requests *Requests
}

// Requests counts the FUSE requests a mount served. The fields are updated
// atomically and may be read at any time.
type Requests struct {
	Lookups  atomic.Uint64 // names looked up in a directory
	Readdirs atomic.Uint64 // directory listings
	Opens    atomic.Uint64 // files opened (refused ones included)
	Reads    atomic.Uint64 // read requests on value and control files
	Writes   atomic.Uint64 // write requests on value and control files
	Refused  atomic.Uint64 // opens and writes refused with an error
}

// Server is a mounted tree.
type Server struct {
	dir  string
	srv  *fuse.Server
	fs   *filesystem
	once sync.Once
	err  error
}

// filesystem is the state every node of one mount shares.
type filesystem struct {
	log     *slog.Logger
	req     *Requests
	mounted time.Time
	uid     uint32
	gid     uint32
}

// Mount mounts root at dir, creating dir if it is missing. A dead FUSE
// mount at dir, left by a daemon that was killed ("transport endpoint is
// not connected"), is detached first and dir reused; a live kstat mount
// there is an error. As root it mounts with mount(2) itself (no fusermount
// needed) with the options default_permissions and allow_other.
func Mount(dir string, root *statsfs.Source, opts Options) (*Server, error) {
	if root == nil {
		return nil, errors.New("fusefs: Mount needs a root source")
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	req := opts.Requests
	if req == nil {
		req = new(Requests)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := prepare(abs, log); err != nil {
		return nil, err
	}
	fsys := &filesystem{
		log:     log,
		req:     req,
		mounted: time.Now(),
		uid:     uint32(os.Geteuid()),
		gid:     uint32(os.Getegid()),
	}
	var none time.Duration
	root0 := &dirNode{fs: fsys, src: root}
	// Root, or a user given CAP_SYS_ADMIN (such as an ambient capability
	// of a systemd unit), mounts directly and lets every user read.
	asRoot := os.Geteuid() == 0 || len(caps.Missing(cap.SYS_ADMIN)) == 0
	srv, err := fs.Mount(abs, root0, &fs.Options{
		MountOptions: fuse.MountOptions{
			FsName:            FsName,
			Name:              Type,
			Options:           []string{"default_permissions"},
			AllowOther:        asRoot,
			DirectMountStrict: asRoot,
			MaxBackground:     64,
			Logger:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		// The tree changes under the kernel's feet: let it cache nothing.
		EntryTimeout:    &none,
		AttrTimeout:     &none,
		NegativeTimeout: &none,
		UID:             fsys.uid,
		GID:             fsys.gid,
		Logger:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	})
	if err != nil {
		return nil, fmt.Errorf("fusefs: mounting at %s: %w", abs, err)
	}
	return &Server{dir: abs, srv: srv, fs: fsys}, nil
}

// Dir is the mount point, as an absolute path.
func (s *Server) Dir() string { return s.dir }

// Requests returns the mount's request counters.
func (s *Server) Requests() *Requests { return s.fs.req }

// Unmount detaches the filesystem and waits for its request loops to end.
// When files are still open in the mount it detaches it lazily instead
// (MNT_DETACH): the mount point is free at once and the kernel drops the
// connection when the last file is closed. Later calls return the first
// call's result.
func (s *Server) Unmount() error {
	s.once.Do(func() {
		err := s.srv.Unmount()
		if err == nil {
			return
		}
		if derr := detach(s.dir); derr != nil {
			s.err = fmt.Errorf("fusefs: unmounting %s: %w (lazy detach: %v)", s.dir, err, derr)
			return
		}
		s.fs.log.Warn("statistics filesystem busy; detached lazily", "mount", s.dir, "err", err)
	})
	return s.err
}
