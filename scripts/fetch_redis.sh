#!/usr/bin/env bash
# Puts redis-server and redis-cli in $1's directory, as $1 and redis-cli, for tests and the
# embedded stack (router_service/embedded/redis_server.py finds them there).
# Order: already there; both on PATH; else Debian's redis-server and redis-tools packages,
# downloaded with `apt-get download` (no root needed, nothing installed system-wide) and unpacked
# with the libraries this machine lacks (scripts/apt_tool.sh).
set -euo pipefail
dest=${1:?usage: fetch_redis.sh DEST}
dir=$(dirname "$dest")
[[ -x $dest && -x $dir/redis-cli ]] && exit 0
mkdir -p "$dir"
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
  ln -sf "$(command -v redis-server)" "$dest"
  ln -sf "$(command -v redis-cli)" "$dir/redis-cli"
else
  source "$(dirname "$0")/apt_tool.sh"
  # redis-server's binary is in redis-tools (redis-server holds the service files).
  apt_tool "$dir" redis-server redis-server redis-tools
  [[ $(basename "$dest") == redis-server ]] || mv "$dir/redis-server" "$dest"
  apt_tool "$dir" redis-cli redis-tools
fi
"$dest" --version
