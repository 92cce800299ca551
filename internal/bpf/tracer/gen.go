// Package tracerbpf holds the tracepoint programs behind kstat's tracer
// (process management, kernel allocations, lock contention, counted per
// process in the kernel) and their bpf2go output.
package tracerbpf

// Reproducible output, as in internal/bpf/netout: bpf2go maps the source
// directory to a relative one, and the only include path is ../headers.
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror" -go-package tracerbpf -output-stem tracer Tracer tracer.bpf.c -- -I../headers
