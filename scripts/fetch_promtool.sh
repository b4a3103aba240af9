#!/usr/bin/env bash
# Puts promtool and prometheus (2.x) in $1's directory, as $1 and prometheus, for tests/deploy:
# rule and dashboard checks (promtool) and a real Prometheus scraping a real stack (prometheus).
# Order: already there; both on PATH; else Debian's prometheus package, downloaded with
# `apt-get download` (no root needed, nothing installed system-wide) and unpacked for the two.
set -euo pipefail
dest=${1:?usage: fetch_promtool.sh DEST}
dir=$(dirname "$dest")
[[ -x $dest && -x $dir/prometheus ]] && exit 0
mkdir -p "$dir"
if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
  ln -sf "$(command -v promtool)" "$dest"
  ln -sf "$(command -v prometheus)" "$dir/prometheus"
elif command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  download() { (cd "$tmp" && apt-get download -q prometheus >/dev/null 2>&1); }
  # A machine whose package lists were never fetched needs one `apt-get update` (root only).
  download || { [[ $(id -u) == 0 ]] && apt-get update -q >/dev/null && download; } || {
    echo "fetch_promtool: 'apt-get download prometheus' failed (run 'apt-get update'?)" >&2; exit 1; }
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
  cp "$tmp/root/usr/bin/prometheus" "$dir/prometheus"
  cp "$tmp/root/usr/bin/promtool" "$dest"
else
  echo "fetch_promtool: need promtool and prometheus 2.x on PATH, or apt-get to fetch them" >&2
  exit 1
fi
"$dest" --version | head -1
