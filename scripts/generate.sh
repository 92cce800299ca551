#!/usr/bin/env bash
# Regenerates every committed BPF object with bpf2go (go generate), after
# installing the C toolchain from Debian when it is missing. Building and
# testing kstat need only Go; this is for changing the C programs.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v clang >/dev/null || need+=(clang)
command -v llvm-strip >/dev/null || need+=(llvm)
[ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
if [ ${#need[@]} -gt 0 ]; then
	echo "generate.sh: installing ${need[*]} from Debian" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
go generate ./internal/bpf/...
