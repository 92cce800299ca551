#!/usr/bin/env bash
# Vendors the dashboard's browser library, uPlot, from the npm registry into
# web/static/vendor/uplot/ (the minified script, its style sheet and its
# licence), where go:embed puts it in the binary. npm checks the tarball
# against the registry's integrity hash. CI runs this and fails when the
# files differ from the committed ones. Installs npm from Debian when it is
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."
UPLOT_VERSION=1.6.32
# The registry's sha512 of uplot-$UPLOT_VERSION.tgz (npm view uplot@VERSION dist.integrity).
UPLOT_INTEGRITY=sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==
if ! command -v npm >/dev/null; then
	if [ "$(id -u)" != 0 ]; then
		echo "vendor-web.sh: npm is missing; install it (apt-get install npm) or run as root" >&2
		exit 1
	fi
	echo "vendor-web.sh: installing npm from Debian" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent --cache "$tmp/cache" "uplot@$UPLOT_VERSION" >/dev/null)
tgz=$tmp/uplot-$UPLOT_VERSION.tgz
got=$(node -e 'const c=require("crypto"),fs=require("fs");process.stdout.write("sha512-"+c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' "$tgz")
if [ "$got" != "$UPLOT_INTEGRITY" ]; then
	echo "vendor-web.sh: uplot-$UPLOT_VERSION.tgz has $got, want $UPLOT_INTEGRITY" >&2
	exit 1
fi
tar -xzf "$tgz" -C "$tmp" package/LICENSE package/dist/uPlot.iife.min.js package/dist/uPlot.min.css
out=web/static/vendor/uplot
rm -rf "$out"
mkdir -p "$out"
cp "$tmp/package/LICENSE" "$out/LICENSE"
cp "$tmp/package/dist/uPlot.iife.min.js" "$out/uPlot.iife.min.js"
cp "$tmp/package/dist/uPlot.min.css" "$out/uPlot.min.css"
chmod 0644 "$out"/*
echo "vendor-web.sh: uPlot $UPLOT_VERSION in $out" >&2
