package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/kstat/kstat/statsfs/fusefs"
)

// fuseFloorEnv names the mount point when the harness runs itself as the
// bare go-fuse filesystem of the FUSE step's floor.
const fuseFloorEnv = "KSTAT_BENCH_FUSE_FLOOR"

// floorRoot is the bare filesystem: one file, "value", whose text is
// made at each open, as kstat's value files are, with kstat's open flags
// and cache timeouts. What a read of it costs is go-fuse's and the
// kernel's share of a kstat value read.
type floorRoot struct{ fs.Inode }

type floorFile struct {
	fs.Inode
	opens atomic.Uint64
}

type floorHandle struct{ text []byte }

var (
	_ fs.NodeOnAdder   = (*floorRoot)(nil)
	_ fs.NodeOpener    = (*floorFile)(nil)
	_ fs.NodeGetattrer = (*floorFile)(nil)
	_ fs.FileReader    = (*floorHandle)(nil)
)

func (r *floorRoot) OnAdd(ctx context.Context) {
	r.AddChild("value", r.NewPersistentInode(ctx, &floorFile{}, fs.StableAttr{Mode: syscall.S_IFREG}), false)
}

func (f *floorFile) Open(context.Context, uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return &floorHandle{text: fmt.Appendf(nil, "%d\n", f.opens.Add(1))}, fusefs.OpenFlags, 0
}

func (f *floorFile) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o444
	out.SetTimeout(fusefs.CacheFor)
	return 0
}

func (h *floorHandle) Read(_ context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= int64(len(h.text)) {
		return fuse.ReadResultData(nil), 0
	}
	return fuse.ReadResultData(h.text[off:min(int64(len(h.text)), off+int64(len(dest)))]), 0
}

// serveFuseFloor mounts the bare filesystem at dir until SIGTERM.
func serveFuseFloor(dir string) error {
	cache := fusefs.CacheFor
	srv, err := fs.Mount(dir, &floorRoot{}, &fs.Options{
		MountOptions: fuse.MountOptions{FsName: "kstat-bench-floor", DirectMountStrict: true, MaxBackground: 64},
		EntryTimeout: &cache,
		AttrTimeout:  &cache,
	})
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-sig
		_ = srv.Unmount()
	}()
	srv.Wait()
	return nil
}

// startFuseFloor runs the harness itself as the bare filesystem, in a
// process of its own like the daemon, and returns its value file.
func (h *harness) startFuseFloor() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(h.work, "fuse-floor")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), fuseFloorEnv+"="+dir)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	h.atExit(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	value := filepath.Join(dir, "value")
	for range 100 {
		if _, err := os.Stat(value); err == nil {
			return value, nil
		}
		select {
		case err := <-exited:
			return "", fmt.Errorf("the bare go-fuse filesystem exited: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return "", errors.New("the bare go-fuse filesystem did not mount within 5s")
}
