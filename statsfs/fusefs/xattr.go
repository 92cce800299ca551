package fusefs

import (
	"context"
	"syscall"

	"github.com/kstat/kstat/statsfs"
)

// Extended attribute names. Each node has the ones that apply to it.
const (
	XattrHelp  = "user.kstat.help"  // one-line description
	XattrType  = "user.kstat.type"  // u64, s32, bool, f64, ... or "control"
	XattrUnit  = "user.kstat.unit"  // bytes, seconds, ...; absent when none
	XattrAggr  = "user.kstat.aggr"  // sum, min, ...; only on aggregates
	XattrFlag  = "user.kstat.flag"  // cumulative or floating
	XattrLabel = "user.kstat.label" // instance label key of a source
)

type xattr struct{ name, value string }

func valueXattrs(ref statsfs.ValueRef) []xattr {
	d := ref.Value()
	flag := "cumulative"
	if d.Flag&statsfs.Floating != 0 {
		flag = "floating"
	}
	xs := []xattr{{XattrHelp, d.Help}, {XattrType, d.Type.String()}, {XattrFlag, flag}}
	if d.Unit != "" {
		xs = append(xs, xattr{XattrUnit, d.Unit})
	}
	if ref.Aggregate() {
		xs = append(xs, xattr{XattrAggr, d.Aggr.String()})
	}
	return xs
}

// getxattr copies the attribute called name into dest; an empty dest asks
// for the size.
func getxattr(xs []xattr, name string, dest []byte) (uint32, syscall.Errno) {
	for _, x := range xs {
		if x.name != name {
			continue
		}
		if len(dest) == 0 {
			return uint32(len(x.value)), 0
		}
		if len(dest) < len(x.value) {
			return uint32(len(x.value)), syscall.ERANGE
		}
		return uint32(copy(dest, x.value)), 0
	}
	return 0, syscall.ENODATA
}

// listxattr copies the NUL-terminated names into dest; an empty dest asks
// for the size.
func listxattr(xs []xattr, dest []byte) (uint32, syscall.Errno) {
	var b []byte
	for _, x := range xs {
		b = append(append(b, x.name...), 0)
	}
	if len(dest) == 0 {
		return uint32(len(b)), 0
	}
	if len(dest) < len(b) {
		return uint32(len(b)), syscall.ERANGE
	}
	return uint32(copy(dest, b)), 0
}

func (n *valueNode) xattrs() []xattr { return valueXattrs(n.ref) }

func (n *controlNode) xattrs() []xattr {
	return []xattr{{XattrHelp, n.c.Help}, {XattrType, "control"}}
}

func (n *dirNode) xattrs() []xattr {
	if l := n.src.Label(); l != "" {
		return []xattr{{XattrLabel, l}}
	}
	return nil
}

// Getxattr returns one of the value's attributes.
func (n *valueNode) Getxattr(_ context.Context, name string, dest []byte) (uint32, syscall.Errno) {
	return getxattr(n.xattrs(), name, dest)
}

// Listxattr lists the value's attributes.
func (n *valueNode) Listxattr(_ context.Context, dest []byte) (uint32, syscall.Errno) {
	return listxattr(n.xattrs(), dest)
}

// Getxattr returns one of the control's attributes.
func (n *controlNode) Getxattr(_ context.Context, name string, dest []byte) (uint32, syscall.Errno) {
	return getxattr(n.xattrs(), name, dest)
}

// Listxattr lists the control's attributes.
func (n *controlNode) Listxattr(_ context.Context, dest []byte) (uint32, syscall.Errno) {
	return listxattr(n.xattrs(), dest)
}

// Getxattr returns one of the source's attributes.
func (n *dirNode) Getxattr(_ context.Context, name string, dest []byte) (uint32, syscall.Errno) {
	return getxattr(n.xattrs(), name, dest)
}

// Listxattr lists the source's attributes.
func (n *dirNode) Listxattr(_ context.Context, dest []byte) (uint32, syscall.Errno) {
	return listxattr(n.xattrs(), dest)
}
