#!/usr/bin/env bash
# A Debian 13 (trixie) root, for the second LibTorch leg: Debian 13 ships
# LibTorch/PyTorch 2.6, torchvision 0.21 and torchaudio 2.6, where this
# machine (Debian 12) has 1.13. The root is made once with debootstrap and
# kept (STITCH_DEBIAN13_ROOT, default /var/cache/stitch/debian13); every step
# is safe to run again and does only what is missing.
#
#   bash scripts/debian13.sh root                 make or update the root
#   bash scripts/debian13.sh python ARGS...       Debian 13's /usr/bin/python3, in the root,
#                                                 with this repo's folder and /tmp shared
#   bash scripts/debian13.sh test                 build stitch in the root (build-debian13/)
#                                                 and run the whole test suite there
#   bash scripts/debian13.sh run COMMAND...        any command in the root, in this folder
#
# The archive's address is read from this machine's own apt sources; none is
# written here. As root (debootstrap, chroot and mount need it).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
root=${STITCH_DEBIAN13_ROOT:-/var/cache/stitch/debian13}
suite=trixie

# The first Debian archive URI (and the security archive's) in this machine's
# apt sources, deb822 (.sources) or one-line (.list) style.
archive_uri() {  # $1: "debian" or "debian-security"
  local want=$1
  { cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
    grep -oE '(URIs:[[:space:]]*|^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)[a-z]+://[^[:space:]]+' |
    grep -oE '[a-z]+://[^[:space:]]+' | sed 's:/*$::' |
    awk -v want="$want" '{ n = split($0, p, "/") } p[n] == want && !found { print; found = 1 }'
}

# Runs a command in the root, in this repo's folder (bound at the same path,
# as are /proc, /sys, /dev, /tmp and the sibling shared/). The binds live in
# a mount namespace of the command's own: they vanish when it ends, and runs
# side by side (the tests call `python` concurrently) never disturb each other.
in_root() {
  local shared=""
  [ -d "$repo/../shared" ] && shared=$(cd "$repo/../shared" && pwd)
  unshare --mount --propagation private bash -c '
    set -e
    root=$1 repo=$2 shared=$3
    shift 3
    for dir in proc sys dev tmp; do
      mkdir -p "$root/$dir"
      mount --rbind "/$dir" "$root/$dir"
    done
    for dir in "$repo" $shared; do
      mkdir -p "$root$dir"
      mount --bind "$dir" "$root$dir"
    done
    exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      ${CI:+CI=$CI} ${STITCH_FUZZ_SECONDS:+STITCH_FUZZ_SECONDS=$STITCH_FUZZ_SECONDS} \
      bash -c "cd \"\$0\" && exec \"\$@\"" "$repo" "$@"
  ' in_root "$root" "$repo" "$shared" "$@"
}

step_root() {
  if [ ! -f "$root/.stitch-debootstrap-done" ]; then
    local mirror
    mirror=$(archive_uri debian)
    [ -n "$mirror" ] || { echo "debian13: no Debian archive in this machine's apt sources" >&2; exit 1; }
    command -v debootstrap >/dev/null || {
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    echo "debian13: debootstrap $suite into $root (once; a few minutes)"
    rm -rf "$root"
    mkdir -p "$root"
    debootstrap --variant=minbase --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
      "$suite" "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
      { tail -20 "$root.debootstrap.log" >&2; exit 1; }
    local security
    security=$(archive_uri debian-security)
    {
      echo "deb $mirror $suite main"
      echo "deb $mirror $suite-updates main"
      [ -z "$security" ] || echo "deb $security $suite-security main"
    } >"$root/etc/apt/sources.list"
    touch "$root/.stitch-debootstrap-done"
  fi
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  # The same package list as this machine's, from Debian 13.
  in_root bash scripts/install_packages.sh
}

step_python() {
  [ -f "$root/.stitch-debootstrap-done" ] || step_root
  in_root /usr/bin/python3 "$@"
}

step_test() {
  step_root
  # A plain build (gcc, no sanitizers: the sanitized leg runs on this
  # machine's LibTorch), then every test: ctest runs the C++ and Python tests.
  in_root bash -c '
    set -e
    export CCACHE_DIR=/var/cache/ccache CCACHE_MAXSIZE=5G
    export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
    cmake -S . -B build-debian13 -DCMAKE_BUILD_TYPE=Release -DSTITCH_WERROR=ON -DSTITCH_BUILD_BENCH=OFF >/dev/null
    cmake --build build-debian13 -j"$(nproc)"
    cd build-debian13 && ctest --output-on-failure -j"$(nproc)" --timeout 1500'
}

case ${1:-} in
  root) step_root ;;
  python) shift; step_python "$@" ;;
  test) step_test ;;
  run) shift; step_root; in_root "$@" ;;
  *) echo "usage: scripts/debian13.sh root | python ARGS... | test | run COMMAND..." >&2; exit 2 ;;
esac
