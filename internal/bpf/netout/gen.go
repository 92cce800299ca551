// Package netout holds the netfilter BPF program behind kstat's KSTAT
// feature (outgoing packets by family and protocol) and its bpf2go output.
package netout

// Reproducible output: CI regenerates these files in a clone at another
// path and fails on any byte difference. bpf2go (v0.22, gen/compile.go)
// already runs clang with -fdebug-prefix-map=<dir>=<relative dir> and
// -fdebug-compilation-dir . and strips DWARF, so the only path left in the
// object is the BTF line info's "././netout.bpf.c". Checked: a clone at
// /tmp/x regenerates byte-identical .o and .go. Other BPF families can copy
// this line as it is; add no absolute -I path (use ../headers), since the
// paths of included headers can end up in BTF line info too. The C file
// starts with "//go:build ignore" (the go tool reads build constraints in
// .c files too), or the package fails with "C source files not allowed".
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror" -go-package netout -output-stem netout Netout netout.bpf.c -- -I../headers
