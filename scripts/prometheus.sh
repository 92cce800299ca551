#!/usr/bin/env bash
# Builds the real Prometheus 3 server and promtool that kstat's fleet tests
# run against (OTLP receiver, scrapes, rule checks), from source through the
# Go module proxy, into a cache outside the repository. Prints the directory
# holding both binaries. A second run with the binaries in place does nothing.
#
#   KSTAT_TEST_CACHE   cache root (default ~/.cache/kstat-test)
#   PROMETHEUS_VERSION module version (default below)
#
# Service discovery other than static and file configs is left out
# (-tags remove_all_sd), which halves the build; it takes minutes on 2 CPUs;
# concurrent callers wait on a lock.
set -euo pipefail
version=${PROMETHEUS_VERSION:-v0.316.0}
cache=${KSTAT_TEST_CACHE:-${HOME:-/root}/.cache/kstat-test}
dir="$cache/prometheus-$version"
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if [ ! -x "$dir/prometheus" ] || [ ! -x "$dir/promtool" ]; then
	echo "prometheus.sh: building prometheus and promtool $version into $dir (a few minutes)" >&2
	# The module is not kstat's dependency: build outside kstat's go.mod.
	(cd "$dir" && GOFLAGS=-buildvcs=false GOBIN="$dir/.new" \
		go install -tags remove_all_sd "github.com/prometheus/prometheus/cmd/prometheus@$version" \
		"github.com/prometheus/prometheus/cmd/promtool@$version")
	mv "$dir/.new/prometheus" "$dir/.new/promtool" "$dir/"
	rmdir "$dir/.new"
fi
echo "$dir"
