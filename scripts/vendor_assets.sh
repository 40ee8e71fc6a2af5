#!/usr/bin/env bash
# Refresh the chart library vendored into the dashboard package.
#
# The dashboard and the HTML reports draw their charts with uPlot (https://github.com/leeoniya/uPlot),
# MIT licence, Copyright (c) 2022 Leon Sorokin.  The minified build, its stylesheet and its licence
# are committed under src/buttress/dashboard/static/vendor/, so nothing is fetched at run time and
# the package works offline.  This script is how those files were obtained: `npm pack` of a pinned
# version from the npm registry, a checksum check of the tarball, then a copy.
#
#   scripts/vendor_assets.sh            # fetch UPLOT_VERSION, verify, copy
#   scripts/vendor_assets.sh --check    # verify the committed files match the pinned tarball
#
# To upgrade: change UPLOT_VERSION and UPLOT_TGZ_SHA256 (from `npm view uplot@X dist.integrity`,
# or the sha256 of the tarball after checking its integrity), run the script, run
# tests/dashboard, and update the version in docs/dashboard.md.
set -euo pipefail

UPLOT_VERSION="1.6.32"
UPLOT_TGZ_SHA256="4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d"

here="$(cd "$(dirname "$0")/.." && pwd)"
dest="$here/src/buttress/dashboard/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
npm pack --silent "uplot@${UPLOT_VERSION}" >/dev/null
tgz="uplot-${UPLOT_VERSION}.tgz"
echo "${UPLOT_TGZ_SHA256}  ${tgz}" | sha256sum --check --quiet
tar xzf "$tgz"

files=("dist/uPlot.iife.min.js:uPlot.iife.min.js" "dist/uPlot.min.css:uPlot.min.css" "LICENSE:uPlot.LICENSE")
if [[ "${1:-}" == "--check" ]]; then
    status=0
    for pair in "${files[@]}"; do
        src="package/${pair%%:*}"; dst="$dest/${pair##*:}"
        if ! cmp -s "$src" "$dst"; then echo "differs from uplot@${UPLOT_VERSION}: $dst"; status=1; fi
    done
    exit $status
fi

mkdir -p "$dest"
for pair in "${files[@]}"; do
    cp "package/${pair%%:*}" "$dest/${pair##*:}"
done
echo "vendored uplot ${UPLOT_VERSION} into ${dest}"
