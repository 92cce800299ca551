// Package funcsbpf holds the programs that count calls of named kernel
// functions (fentry, or kprobe where fentry is missing) and their bpf2go
// output.
package funcsbpf

// Reproducible output, as in internal/bpf/netout.
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror" -go-package funcsbpf -output-stem funcs Funcs funcs.bpf.c -- -I../headers
