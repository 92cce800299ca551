#!/usr/bin/env bash
# Checks that a module importing the public statsfs packages (statsfs and
# statsfs/fusefs) inherits none of kstat's other dependencies: its tidy
# go.sum lists only what those packages build with (go-fuse and its own
# requirements, x/sys, libcap), never kstat's others: cilium/ebpf, the
# Prometheus client, test-only ones such as chromedp.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/main.go" <<'GO'
package main

import (
	"fmt"

	"github.com/kstat/kstat/statsfs"
	_ "github.com/kstat/kstat/statsfs/fusefs"
)

func main() { fmt.Println(statsfs.NewSource("x").Name()) }
GO
cat >"$dir/go.mod" <<MOD
module example.com/importer

go 1.26

require github.com/kstat/kstat v0.0.0

replace github.com/kstat/kstat => $repo
MOD
(cd "$dir" && GOFLAGS=-mod=mod go mod tidy && go build ./...)
# go-fuse's own requirements (kylelemons/godebug, moby/sys/mountinfo) are
# go-fuse's to bring.
allowed='^(github.com/hanwen/go-fuse/v2|github.com/kylelemons/godebug|github.com/moby/sys/mountinfo|golang.org/x/sys|kernel.org/pub/linux/libs/security/libcap/(cap|psx)) '
if extra=$(grep -Ev "$allowed" "$dir/go.sum"); then
	echo "a module importing statsfs inherits more than it builds with:" >&2
	echo "$extra" >&2
	exit 1
fi
echo "statsfs importers need only: $(cut -d' ' -f1 "$dir/go.sum" | sort -u | tr '\n' ' ')"
