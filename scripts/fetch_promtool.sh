#!/usr/bin/env bash
# Puts promtool (Prometheus 2.x) at $1, for the rule and dashboard checks in tests/deploy.
# Order: $1 already there; `promtool` on PATH; else Debian's prometheus package, downloaded with
# `apt-get download` (no root, nothing installed system-wide) and unpacked for promtool alone.
set -euo pipefail
dest=${1:?usage: fetch_promtool.sh DEST}
[[ -x $dest ]] && exit 0
mkdir -p "$(dirname "$dest")"
if command -v promtool >/dev/null; then
  ln -sf "$(command -v promtool)" "$dest"
elif command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  download() { (cd "$tmp" && apt-get download -q prometheus >/dev/null 2>&1); }
  # A machine whose package lists were never fetched needs one `apt-get update` (root only).
  download || { [[ $(id -u) == 0 ]] && apt-get update -q >/dev/null && download; } || {
    echo "fetch_promtool: 'apt-get download prometheus' failed (run 'apt-get update'?)" >&2; exit 1; }
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
  cp "$tmp/root/usr/bin/promtool" "$dest"
else
  echo "fetch_promtool: no promtool on PATH and no apt-get: install Prometheus 2.x's promtool" >&2
  exit 1
fi
"$dest" --version | head -1
