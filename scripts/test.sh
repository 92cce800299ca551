#!/usr/bin/env bash
# Runs kstat's whole test suite, after installing from Debian what the tests
# use (nftables for independent packet counts, iproute2 for network
# namespaces, chromium for the dashboard's browser test, tmux for kstat trace's
# terminal test, systemd for systemd-analyze verify of deploy/systemd, prometheus
# for promtool and a real server scraping the daemon, bpftool as an independent
# reader of BPF program statistics), and builds the Prometheus 3 server the
# fleet tests run (scripts/prometheus.sh). Extra arguments
# go to "go test" (default: -race ./...).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
command -v chromium >/dev/null || need+=(chromium)
command -v tmux >/dev/null || need+=(tmux)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v promtool >/dev/null || need+=(prometheus) # promtool and the server the metrics tests scrape with
command -v bpftool >/dev/null || need+=(bpftool)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "test.sh: installing ${need[*]} from Debian" >&2
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	else
		echo "test.sh: ${need[*]} missing and not root: tests that need them will fail" >&2
	fi
fi
# The real Prometheus 3 and promtool of the fleet tests, built once from
# source into ~/.cache/kstat-test (minutes the first time, then cached).
bash scripts/prometheus.sh >/dev/null
if [ $# -eq 0 ]; then
	set -- -race ./...
fi
exec go test "$@"
