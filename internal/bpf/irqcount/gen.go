// Package irqcountbpf holds the tp_btf programs behind kstat's eBPF IRQ
// counts (handler entries per IRQ number, softirq runs per vector) and
// their bpf2go output. internal/irqcount loads and attaches them.
package irqcountbpf

// The cflags make the objects independent of the checkout path, as in
// internal/bpf/netout.
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror -fdebug-compilation-dir=. -fdebug-prefix-map=${PWD}=." -go-package irqcountbpf -output-stem irqcount Irqcount irqcount.bpf.c -- -I../headers
