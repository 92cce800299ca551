// Package emptybpf holds benchmark-only BPF programs that do nothing, on
// the hooks kstat's programs use (netfilter LOCAL_OUT, the four kmem
// tracepoints): the floor that kstat's programs are measured against. The
// daemon never loads them.
package emptybpf

// Reproducible output, as in internal/bpf/netout.
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror" -go-package emptybpf -output-stem empty Empty empty.bpf.c -- -I../headers
