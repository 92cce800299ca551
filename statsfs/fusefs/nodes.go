package fusefs

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/kstat/kstat/statsfs"
)

// dirNode is the directory of one source.
type dirNode struct {
	fs.Inode
	fs   *filesystem
	src  *statsfs.Source
	path string // below the mount's root, for logs
}

// valueNode is the file of one value.
type valueNode struct {
	fs.Inode
	fs   *filesystem
	ref  statsfs.ValueRef
	path string
}

// controlNode is the file of one control.
type controlNode struct {
	fs.Inode
	fs   *filesystem
	c    *statsfs.Control
	path string
}

var (
	_ fs.NodeLookuper    = (*dirNode)(nil)
	_ fs.NodeReaddirer   = (*dirNode)(nil)
	_ fs.NodeGetattrer   = (*dirNode)(nil)
	_ fs.NodeGetxattrer  = (*dirNode)(nil)
	_ fs.NodeListxattrer = (*dirNode)(nil)

	_ fs.NodeOpener      = (*valueNode)(nil)
	_ fs.NodeGetattrer   = (*valueNode)(nil)
	_ fs.NodeSetattrer   = (*valueNode)(nil)
	_ fs.NodeGetxattrer  = (*valueNode)(nil)
	_ fs.NodeListxattrer = (*valueNode)(nil)

	_ fs.NodeOpener      = (*controlNode)(nil)
	_ fs.NodeGetattrer   = (*controlNode)(nil)
	_ fs.NodeSetattrer   = (*controlNode)(nil)
	_ fs.NodeGetxattrer  = (*controlNode)(nil)
	_ fs.NodeListxattrer = (*controlNode)(nil)

	_ fs.FileReader   = (*handle)(nil)
	_ fs.FileWritever = (*handle)(nil)
	_ fs.FileWriter   = (*handle)(nil)
)

// entry is one name in a source's directory: exactly one of ref, control
// and sub is set.
type entry struct {
	name    string
	ref     statsfs.ValueRef
	control *statsfs.Control
	sub     *statsfs.Source
}

func (e entry) mode() uint32 {
	switch {
	case e.sub != nil:
		return fuse.S_IFDIR | 0o755
	case e.control != nil:
		return fuse.S_IFREG | uint32(e.control.Mode().Perm())
	}
	return fuse.S_IFREG | uint32(e.ref.Value().Mode().Perm())
}

// validName reports whether name can be a file name.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

// entries lists src's directory: its visible values (the newest group
// wins a name, as Source.LookupName finds it), then its controls, then its
// visible subordinates (the newest wins a name). A name is listed once, in
// that order of precedence.
func entries(src *statsfs.Source) []entry {
	vals := src.Values()
	subs := src.Subordinates()
	ctls := src.Controls()
	out := make([]entry, 0, len(vals)+len(subs)+len(ctls))
	seen := make(map[string]bool, cap(out))
	add := func(e entry) {
		if validName(e.name) && !seen[e.name] {
			seen[e.name] = true
			out = append(out, e)
		}
	}
	for i := len(vals) - 1; i >= 0; i-- {
		if !vals[i].Hidden() {
			add(entry{name: vals[i].Value().Name, ref: vals[i]})
		}
	}
	// Values were gathered newest group first; list them oldest first.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	for _, c := range ctls {
		add(entry{name: c.Name, control: c})
	}
	for i := len(subs) - 1; i >= 0; i-- {
		if !subs[i].Hidden() {
			add(entry{name: subs[i].Name(), sub: subs[i]})
		}
	}
	return out
}

// find resolves one name in src with the precedence of entries.
func find(src *statsfs.Source, name string) (entry, bool) {
	if !validName(name) {
		return entry{}, false
	}
	vals := src.Values()
	for i := len(vals) - 1; i >= 0; i-- {
		if !vals[i].Hidden() && vals[i].Value().Name == name {
			return entry{name: name, ref: vals[i]}, true
		}
	}
	if c := src.Control(name); c != nil {
		return entry{name: name, control: c}, true
	}
	subs := src.Subordinates()
	for i := len(subs) - 1; i >= 0; i-- {
		if !subs[i].Hidden() && subs[i].Name() == name {
			return entry{name: name, sub: subs[i]}, true
		}
	}
	return entry{}, false
}

func (n *dirNode) childPath(name string) string {
	if n.path == "" {
		return name
	}
	return n.path + "/" + name
}

// Lookup resolves name in the live tree. A child inode the kernel already
// knows is reused while the name still means the same thing; otherwise a
// new inode replaces it.
func (n *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.fs.req.Lookups.Add(1)
	e, ok := find(n.src, name)
	if !ok {
		return nil, syscall.ENOENT
	}
	cacheEntry(out, e)
	if ch := n.GetChild(name); ch != nil && same(ch.Operations(), e) {
		n.fs.attr(&out.Attr, e.mode())
		return ch, 0
	}
	var node fs.InodeEmbedder
	path := n.childPath(name)
	switch {
	case e.sub != nil:
		node = &dirNode{fs: n.fs, src: e.sub, path: path}
	case e.control != nil:
		node = &controlNode{fs: n.fs, c: e.control, path: path}
	default:
		node = &valueNode{fs: n.fs, ref: e.ref, path: path}
	}
	n.fs.attr(&out.Attr, e.mode())
	return n.NewInode(ctx, node, fs.StableAttr{Mode: e.mode() & syscall.S_IFMT}), 0
}

// CacheFor is how long the kernel may keep an entry or attributes without
// asking again. Modes never change, nor do the value and control files of
// a source, nor the sources that are not instances; an instance source
// (a process, a device) can go at any time, so its directory entry is not
// cached: the kernel looks it up on every path walk, and a gone instance
// fails the walk at once. File contents are never cached (direct I/O).
const CacheFor = time.Second

// cacheEntry sets how long the kernel may cache the entry of e.
func cacheEntry(out *fuse.EntryOut, e entry) {
	out.SetAttrTimeout(CacheFor)
	if e.sub == nil || e.sub.Label() == "" {
		out.SetEntryTimeout(CacheFor)
	}
}

// same reports whether node is the one that serves e.
func same(node fs.InodeEmbedder, e entry) bool {
	switch x := node.(type) {
	case *dirNode:
		return e.sub != nil && x.src == e.sub
	case *controlNode:
		return e.control != nil && x.c == e.control
	case *valueNode:
		return e.sub == nil && e.control == nil && x.ref == e.ref
	}
	return false
}

// Readdir lists the source's directory as it is now.
func (n *dirNode) Readdir(context.Context) (fs.DirStream, syscall.Errno) {
	n.fs.req.Readdirs.Add(1)
	es := entries(n.src)
	list := make([]fuse.DirEntry, len(es))
	for i, e := range es {
		list[i] = fuse.DirEntry{Name: e.name, Mode: e.mode() & syscall.S_IFMT}
	}
	return fs.NewListDirStream(list), 0
}

// Getattr reports a 0755 directory.
func (n *dirNode) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fs.attr(&out.Attr, fuse.S_IFDIR|0o755)
	out.Nlink = 2
	if n.path != "" {
		// Not the root's: a stat of the mount point must reach the
		// daemon, so that a dead mount reads ENOTCONN at once.
		out.SetTimeout(CacheFor)
	}
	return 0
}

// attr fills the attributes every node shares.
func (f *filesystem) attr(a *fuse.Attr, mode uint32) {
	a.Mode = mode
	a.Nlink = 1
	a.Owner = fuse.Owner{Uid: f.uid, Gid: f.gid}
	t := uint64(f.mounted.Unix())
	a.Atime, a.Mtime, a.Ctime = t, t, t
	a.Blksize = 4096
}

// Getattr reports the value's mode; the size is 0, as for /proc files,
// since the text is only made when the file is opened.
func (n *valueNode) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fs.attr(&out.Attr, fuse.S_IFREG|uint32(n.ref.Value().Mode().Perm()))
	out.SetTimeout(CacheFor)
	return 0
}

// Getattr reports the control's mode.
func (n *controlNode) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fs.attr(&out.Attr, fuse.S_IFREG|uint32(n.c.Mode().Perm()))
	out.SetTimeout(CacheFor)
	return 0
}

// Setattr lets `echo 0 > file` truncate a writable file (a no-op) and
// refuses everything else.
func (n *valueNode) Setattr(_ context.Context, _ fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	mode := uint32(n.ref.Value().Mode().Perm())
	if errno := n.fs.setattr(n.path, mode, in); errno != 0 {
		return errno
	}
	n.fs.attr(&out.Attr, fuse.S_IFREG|mode)
	return 0
}

// Setattr is as for values.
func (n *controlNode) Setattr(_ context.Context, _ fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	mode := uint32(n.c.Mode().Perm())
	if errno := n.fs.setattr(n.path, mode, in); errno != 0 {
		return errno
	}
	n.fs.attr(&out.Attr, fuse.S_IFREG|mode)
	return 0
}

func (f *filesystem) setattr(path string, mode uint32, in *fuse.SetAttrIn) syscall.Errno {
	if in.Valid&(fuse.FATTR_MODE|fuse.FATTR_UID|fuse.FATTR_GID) != 0 {
		f.refuse(path, "write", "mode and owner are fixed", syscall.EPERM)
		return syscall.EPERM
	}
	if size, ok := in.GetSize(); ok {
		if mode&0o222 == 0 {
			f.refuse(path, "truncate", "read-only file", syscall.EACCES)
			return syscall.EACCES
		}
		if size != 0 {
			f.refuse(path, "truncate", "only truncation to 0 is allowed", syscall.EINVAL)
			return syscall.EINVAL
		}
	}
	return 0
}

// refuse counts and logs a refused request.
func (f *filesystem) refuse(path, op, reason string, errno syscall.Errno) {
	f.req.Refused.Add(1)
	f.log.Info("statistics file refused a request", "path", path, "op", op, "reason", reason, "errno", errno.Error())
}

// handle is an open value or control file: the text of the moment it was
// opened, and what a write does.
type handle struct {
	fs   *filesystem
	path string
	text []byte
	// rerr fails every read: ENODATA for a value that was absent at open.
	rerr  syscall.Errno
	write func(text string) (reason string, errno syscall.Errno)
}

// opened checks the access mode against the file's mode and returns a
// handle with the text (or read error) made by read when the file is
// opened for reading.
func (f *filesystem) opened(path string, mode uint32, flags uint32, read func() (string, syscall.Errno)) (*handle, syscall.Errno) {
	f.req.Opens.Add(1)
	acc := flags & syscall.O_ACCMODE
	if acc != syscall.O_RDONLY && mode&0o222 == 0 {
		// Root passes default_permissions; refuse here.
		f.refuse(path, "open", "read-only file opened for writing", syscall.EACCES)
		return nil, syscall.EACCES
	}
	h := &handle{fs: f, path: path}
	if acc != syscall.O_WRONLY {
		text, errno := read()
		h.text, h.rerr = []byte(text), errno
	}
	return h, 0
}

// OpenFlags make every read reach the handle (no page cache) and spare
// the FLUSH request on close: writes are applied when they are made.
const OpenFlags = fuse.FOPEN_DIRECT_IO | fuse.FOPEN_NOFLUSH

// Open opens the value's file, reading the value now. A value that is
// absent then opens, but its reads fail with ENODATA ("No data
// available"): there is no number to show, and 0 would be a lie.
func (n *valueNode) Open(_ context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	d := n.ref.Value()
	read := func() (string, syscall.Errno) {
		r := n.ref.Read()
		if r.Absent {
			return "", syscall.ENODATA
		}
		return d.Text(r), 0
	}
	h, errno := n.fs.opened(n.path, uint32(d.Mode().Perm()), flags, read)
	if errno != 0 {
		return nil, 0, errno
	}
	h.write = func(text string) (string, syscall.Errno) {
		if !isZero(text) {
			return "only 0 (to clear the value) may be written: " + quote(text), syscall.EINVAL
		}
		if err := n.ref.Clear(); err != nil {
			return err.Error(), errnoOf(err)
		}
		// Logged as the HTTP API logs a clear: every change is.
		n.fs.log.Info("counter cleared", "path", n.path, "via", "mount")
		return "", 0
	}
	return h, OpenFlags, 0
}

// Open opens the control's file, reading it now.
func (n *controlNode) Open(_ context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	read := func() (string, syscall.Errno) {
		if n.c.Read == nil {
			return "", 0
		}
		return n.c.Read(), 0
	}
	h, errno := n.fs.opened(n.path, uint32(n.c.Mode().Perm()), flags, read)
	if errno != 0 {
		return nil, 0, errno
	}
	h.write = func(text string) (string, syscall.Errno) {
		if n.c.Write == nil {
			return "read-only control", syscall.EACCES
		}
		if err := n.c.Write(text); err != nil {
			return err.Error(), errnoOf(err)
		}
		return "", 0
	}
	return h, OpenFlags, 0
}

// errnoOf maps the tree's errors to errno values.
func errnoOf(err error) syscall.Errno {
	switch {
	case errors.Is(err, statsfs.ErrInvalid):
		return syscall.EINVAL
	case errors.Is(err, statsfs.ErrPermission):
		return syscall.EACCES
	case errors.Is(err, statsfs.ErrNotFound):
		return syscall.ENOENT
	}
	return syscall.EIO
}

// Read returns the text from off.
func (h *handle) Read(_ context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.fs.req.Reads.Add(1)
	if h.rerr != 0 {
		return nil, h.rerr
	}
	if off >= int64(len(h.text)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(int64(len(h.text)), off+int64(len(dest)))
	return fuse.ReadResultData(h.text[off:end]), 0
}

// Write applies one write's text, white space trimmed. The whole write is
// one setting: a value is cleared by "0" (any base, as strtoll reads it),
// a control gets the text.
func (h *handle) Write(_ context.Context, data []byte, _ int64) (uint32, syscall.Errno) {
	h.fs.req.Writes.Add(1)
	text := strings.TrimSpace(string(data))
	if reason, errno := h.write(text); errno != 0 {
		h.fs.refuse(h.path, "write", reason, errno)
		return 0, errno
	}
	return uint32(len(data)), 0
}

// Writev joins the pieces and writes them as one.
func (h *handle) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	var b []byte
	for _, d := range data {
		b = append(b, d...)
	}
	return h.Write(ctx, b, off)
}

func quote(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "..."
	}
	return `"` + strings.ToValidUTF8(s, "?") + `"`
}

// isZero reports whether text is an integer equal to zero as C's strtoll
// with base 0 reads it: an optional sign, then 0x/0X and hex digits, 0
// and octal digits, or decimal digits, with nothing after them.
func isZero(text string) bool {
	s := strings.TrimLeft(text, "+-")
	if len(text)-len(s) > 1 || s == "" {
		return false
	}
	digits := "0123456789"
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		s, digits = s[2:], "0123456789abcdefABCDEF"
	case len(s) > 1 && s[0] == '0':
		s, digits = s[1:], "01234567"
	}
	zero := true
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(digits, rune(s[i])) {
			return false
		}
		zero = zero && s[i] == '0'
	}
	return zero
}
