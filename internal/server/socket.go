package server

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// peer is the credentials of a control socket's caller, from SO_PEERCRED.
type peer struct {
	pid      int32
	uid, gid uint32
}

type peerKey struct{}

func peerFrom(ctx context.Context) (peer, bool) {
	p, ok := ctx.Value(peerKey{}).(peer)
	return p, ok
}

// peerContext puts the connection's SO_PEERCRED credentials in the
// context of its requests; a connection whose credentials cannot be read
// gets none, and its requests are refused.
func peerContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, peer{pid: cred.Pid, uid: cred.Uid, gid: cred.Gid})
}

// peerAllowed reports whether a socket peer may use the API: root, or a
// member of --control-socket.group (its primary group, or a supplementary
// group of the process as /proc/PID/status lists them).
func (s *Server) peerAllowed(p peer) bool {
	if p.uid == 0 {
		return true
	}
	if s.groupID < 0 {
		return false
	}
	gid := uint32(s.groupID)
	if p.gid == gid {
		return true
	}
	groups, uid, err := procGroups(p.pid)
	if err != nil || uid != p.uid {
		return false
	}
	for _, g := range groups {
		if g == gid {
			return true
		}
	}
	return false
}

func (s *Server) peerRefusal(p peer) string {
	who := fmt.Sprintf("uid %d", p.uid)
	if s.groupID < 0 {
		return fmt.Sprintf("the control socket serves root only, not %s (start kstat serve with --control-socket.group GROUP to let a group's members in)", who)
	}
	return fmt.Sprintf("the control socket serves root and the members of group %q only, not %s", s.cfg.SocketGroup, who)
}

// procGroups reads the real uid and the supplementary groups of a process.
func procGroups(pid int32) (groups []uint32, uid uint32, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var haveUID bool
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		switch key {
		case "Uid":
			if len(fields) > 0 {
				u, err := strconv.ParseUint(fields[0], 10, 32)
				if err != nil {
					return nil, 0, err
				}
				uid, haveUID = uint32(u), true
			}
		case "Groups":
			for _, g := range fields {
				n, err := strconv.ParseUint(g, 10, 32)
				if err == nil {
					groups = append(groups, uint32(n))
				}
			}
		}
	}
	if !haveUID {
		return nil, 0, fmt.Errorf("/proc/%d/status: no Uid line", pid)
	}
	return groups, uid, sc.Err()
}

// lookupGroup resolves --control-socket.group; -1 for none.
func lookupGroup(name string) (int, error) {
	if name == "" {
		return -1, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		if n, nerr := strconv.ParseUint(name, 10, 31); nerr == nil {
			return int(n), nil
		}
		return -1, fmt.Errorf("--control-socket.group %q: %w", name, err)
	}
	n, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("--control-socket.group %q: gid %q: %w", name, g.Gid, err)
	}
	return n, nil
}

// listenSocket creates the control socket at path with mode 0600 (0660 and
// the group's ownership when gid >= 0). It binds a temporary name, sets the
// mode, then renames it into place, so the socket is never reachable with
// looser permissions. A socket left by a daemon that died is replaced; one
// a live daemon answers on is an error.
func listenSocket(path string, gid int) (*net.UnixListener, error) {
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("control socket %s: a file that is not a socket is in the way; remove it or choose another path with --control-socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another daemon answers on it; stop it or choose another path with --control-socket (\"\" for none)", path)
		}
	}
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.%d.tmp", filepath.Base(path), os.Getpid()))
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w (choose another path with --control-socket, or \"\" for none)", path, err)
	}
	ln.SetUnlinkOnClose(false)
	mode := os.FileMode(0o600)
	if gid >= 0 {
		mode = 0o660
		if err := os.Lchown(tmp, -1, gid); err != nil {
			ln.Close()
			_ = os.Remove(tmp)
			return nil, fmt.Errorf("control socket %s: giving it to gid %d: %w", path, gid, err)
		}
	}
	err = os.Chmod(tmp, mode)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		ln.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return ln, nil
}

// removeSocket removes the control socket at close. Another daemon cannot
// have replaced it while this one served: listenSocket refuses a socket a
// live daemon answers on.
func removeSocket(path string) {
	if st, err := os.Lstat(path); err == nil && st.Mode().Type() == fs.ModeSocket {
		_ = os.Remove(path)
	}
}
