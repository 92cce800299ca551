#!/usr/bin/env bash
# Regenerates internal/bpf/headers/vmlinux.h from this kernel's BTF.
# Needs bpftool (Debian package bpftool); run as: make vmlinux
set -euo pipefail
cd "$(dirname "$0")/.."
command -v bpftool >/dev/null || { echo "vmlinux.sh: bpftool is missing: apt-get install bpftool" >&2; exit 1; }
[ -r /sys/kernel/btf/vmlinux ] || { echo "vmlinux.sh: /sys/kernel/btf/vmlinux is missing: the kernel needs CONFIG_DEBUG_INFO_BTF" >&2; exit 1; }
bpftool btf dump file /sys/kernel/btf/vmlinux format c > internal/bpf/headers/vmlinux.h
echo "wrote internal/bpf/headers/vmlinux.h ($(wc -l < internal/bpf/headers/vmlinux.h) lines) from $(uname -r)"
