#!/usr/bin/env bash
# Puts kcat and jq in $1's directory, as $1 and jq, for tests/embedded/test_kcat_readme.py: the
# README's kcat pipelines run as documented against the embedded broker. Debian's packages (kcat
# 1.7.1 on librdkafka 2.0.2 in Debian 12): the kcat a Debian or Ubuntu user installs.
# Order: already there; else Debian's kcat and jq packages, downloaded with `apt-get download`
# and unpacked with the libraries this machine lacks (scripts/apt_tool.sh). Not taken from PATH:
# the test is about Debian's build, and another kcat may bundle a newer librdkafka.
set -euo pipefail
dest=${1:?usage: fetch_kcat.sh DEST}
dir=$(dirname "$dest")
[[ -x $dest && -x $dir/jq ]] && exit 0
source "$(dirname "$0")/apt_tool.sh"
mkdir -p "$dir"
apt_tool "$dir" kcat kcat
[[ $(basename "$dest") == kcat ]] || mv "$dir/kcat" "$dest"
apt_tool "$dir" jq jq
"$dest" -V | sed -n 4p
"$dir/jq" --version
