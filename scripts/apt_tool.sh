# Sourced by the fetch_*.sh scripts: put a Debian package's binary in a directory without root.
#
#   apt_tool DIR BINARY PACKAGE...
#
# Downloads PACKAGE... and every library package they depend on (`apt-get download`: no root,
# nothing installed system-wide), unpacks them, copies /usr/bin/BINARY (or /usr/sbin) to
# DIR/.BINARY.real, copies into DIR/lib only the shared libraries this machine lacks (found by
# ldd, repeated until nothing is missing; on a stock Debian image that is more than on a
# developer's machine), and writes DIR/BINARY: a wrapper that sets LD_LIBRARY_PATH to DIR/lib.
# A machine whose package lists were never fetched needs one `apt-get update` (root only).
set -euo pipefail

_apt_tool_download() {  # PACKAGE... into the current directory
  apt-get download -q "$@" >/dev/null 2>&1
}

_apt_tool_packages() {  # PACKAGE... and the library packages they depend on, recursively
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances --no-pre-depends "$@" 2>/dev/null |
    grep -v '^ ' | grep -v '^<' | grep -E '^lib' | grep -v -E '^(libc6|libgcc-s1)$' || true
  printf '%s\n' "$@"
}

_apt_tool_missing() {  # sonames BINARY cannot load with LD_LIBRARY_PATH=LIBDIR
  LD_LIBRARY_PATH=$2 ldd "$1" 2>/dev/null | awk '/=> not found/ {print $1}' | sort -u
}

apt_tool() (  # a subshell: its EXIT trap removes its own temporary directory
  local dir=$1 binary=$2
  shift 2
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
    echo "apt_tool: need $binary on PATH, or apt-get and dpkg-deb to fetch package $1" >&2; return 1; }
  local tmp
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now
  trap "rm -rf '$tmp'" EXIT
  mkdir -p "$tmp/debs" "$tmp/root" "$dir/lib"
  local packages
  packages=$(_apt_tool_packages "$@" | sort -u)
  if ! (cd "$tmp/debs" && _apt_tool_download $packages); then
    if [[ $(id -u) == 0 ]] && apt-get update -q >/dev/null; then
      packages=$(_apt_tool_packages "$@" | sort -u)
      (cd "$tmp/debs" && _apt_tool_download $packages) || {
        echo "apt_tool: 'apt-get download $*' failed" >&2; return 1; }
    else
      echo "apt_tool: 'apt-get download $*' failed (run 'apt-get update'?)" >&2
      return 1
    fi
  fi
  local deb
  for deb in "$tmp"/debs/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
  local real=$dir/.$binary.real
  if [[ -e $tmp/root/usr/bin/$binary ]]; then cp "$tmp/root/usr/bin/$binary" "$real"
  elif [[ -e $tmp/root/usr/sbin/$binary ]]; then cp "$tmp/root/usr/sbin/$binary" "$real"
  else echo "apt_tool: no $binary in package(s) $*" >&2; return 1
  fi
  # Bundle only what the system lacks, so security updates of system libraries still apply.
  local missing soname found
  for _ in 1 2 3 4 5 6 7 8; do
    missing=$(_apt_tool_missing "$real" "$dir/lib")
    [[ -z $missing ]] && break
    for soname in $missing; do
      found=$(find "$tmp/root" -name "$soname" \( -type f -o -type l \) | head -1)
      [[ -n $found ]] || { echo "apt_tool: $binary needs $soname, which no fetched package has" >&2; return 1; }
      cp -L "$found" "$dir/lib/$soname"
    done
  done
  missing=$(_apt_tool_missing "$real" "$dir/lib")
  [[ -z $missing ]] || { echo "apt_tool: $binary still misses: $missing" >&2; return 1; }
  cat >"$dir/$binary" <<EOF
#!/bin/sh
# $binary from Debian's $* package(s), fetched by scripts/$(basename "$0"); libraries this
# machine lacked are in lib/.
here=\$(dirname "\$(readlink -f "\$0")")
LD_LIBRARY_PATH="\$here/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "\$here/.$binary.real" "\$@"
EOF
  chmod +x "$dir/$binary" "$real"
)
