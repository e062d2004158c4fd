#!/usr/bin/env bash
# Man pages for sluice, sluice-stat and sluice-gen, generated from their argument
# parsers by swift-argument-parser's generate-manual tool (it runs each binary with
# --experimental-dump-help), plus the hand-written sluice.ini(5).
#
#   tools/man/generate.sh OUTDIR [BINDIR]
#
# writes OUTDIR/man1/{sluice,sluice-stat,sluice-gen}.1 and OUTDIR/man5/sluice.ini.5.
# BINDIR holds the built tools (default: .build/release). Works offline: the tool
# is built from the swift-argument-parser checkout the package already has.
# SCRATCH=DIR builds in another scratch path (swift build --scratch-path DIR).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: tools/man/generate.sh OUTDIR [BINDIR]}
scratch=${SCRATCH:-.build}
bin=${2:-$scratch/release}
for tool in sluice sluice-stat sluice-gen; do
  [ -x "$bin/$tool" ] || { echo "man: no $bin/$tool (build first: swift build -c release)" >&2; exit 1; }
done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! swift build -c release --scratch-path "$scratch" --product generate-manual >"$log" 2>&1; then
  tail -20 "$log" >&2; echo "man: cannot build generate-manual" >&2; exit 1
fi
generator="$scratch/release/generate-manual"
mkdir -p "$out/man1" "$out/man5"
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)
for tool in sluice sluice-stat sluice-gen; do
  "$generator" "$bin/$tool" --date "$date" --section 1 --output-directory "$out/man1"
done
# sluice and sluice-stat have no subcommands but the implicit `help`: drop the
# "subcommand" placeholder the generator puts into their synopsis.
sed -i '/^\.Ar subcommand$/d' "$out/man1/sluice.1" "$out/man1/sluice-stat.1"

install -m 0644 tools/man/sluice.ini.5 "$out/man5/sluice.ini.5"
echo "man: wrote $out/man1/sluice.1 sluice-stat.1 sluice-gen.1, $out/man5/sluice.ini.5"
