#!/usr/bin/env bash
# Install Sluice as a service, idempotently (run it again after an update):
#   - builds the release binaries (swift build -c release) and installs
#     sluice, sluice-stat, sluice-gen to PREFIX/bin (PREFIX=/usr/local),
#   - the man pages sluice(1), sluice-stat(1), sluice-gen(1) (generated from the
#     argument parsers) and sluice.ini(5) to PREFIX/share/man,
#   - the unit to /etc/systemd/system/sluice.service,
#   - an example /etc/sluice/sluice.ini — only if there is none (yours is never touched),
#   - and tells systemd to re-read its units. It enables and starts nothing:
#       systemctl enable --now sluice
#
# DESTDIR=/some/root installs under that root instead (for packaging, or to look
# first); NO_BUILD=1 installs the binaries in BIN_DIR (default .build/release) as they are.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
BIN_DIR=${BIN_DIR:-.build/release}

if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
  echo "install: run as root (or set DESTDIR to install under another root)" >&2; exit 1
fi
if [ "${NO_BUILD:-0}" != 1 ]; then
  echo "install: building release binaries"
  swift build -c release --product sluice
  swift build -c release --product sluice-stat
  swift build -c release --product sluice-gen
fi

bindir="$DESTDIR$PREFIX/bin"
install -d -m 0755 "$bindir"
for tool in sluice sluice-stat sluice-gen; do
  install -m 0755 "$BIN_DIR/$tool" "$bindir/$tool"
done

mandir="$DESTDIR$PREFIX/share/man"
SCRATCH=$(dirname "$BIN_DIR") tools/man/generate.sh "$mandir" "$BIN_DIR"

unitdir="$DESTDIR/etc/systemd/system"
install -d -m 0755 "$unitdir"
# The unit names /usr/local/bin; another PREFIX is written into it.
sed "s#/usr/local/bin/#$PREFIX/bin/#g" tools/systemd/sluice.service > "$unitdir/sluice.service.tmp"
chmod 0644 "$unitdir/sluice.service.tmp"
mv -f "$unitdir/sluice.service.tmp" "$unitdir/sluice.service"

confdir="$DESTDIR/etc/sluice"
install -d -m 0755 "$confdir"
if [ -e "$confdir/sluice.ini" ]; then
  echo "install: keeping $confdir/sluice.ini"
else
  install -m 0644 tools/systemd/sluice.ini "$confdir/sluice.ini"
  echo "install: wrote the example $confdir/sluice.ini"
fi

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  command -v mandb >/dev/null 2>&1 && mandb -q "$PREFIX/share/man" 2>/dev/null || true
  echo "install: done; start with: systemctl enable --now sluice"
else
  echo "install: done (installed under '${DESTDIR:-/}'; systemd is not running here, so nothing was reloaded)"
fi
