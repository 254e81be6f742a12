#!/usr/bin/env bash
# Installs the built stitch into a temporary prefix and builds and runs a
# consumer project against it with find_package(stitch).
set -euo pipefail
build=$1 source=$(dirname "$0")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cmake -S "$source" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
cmake --build "$tmp/build" >/dev/null
"$tmp/build/app"

# The installed shell completion and man page (written from stitch's own
# option tables at build time).
prefix=$tmp/prefix
complete_words() {  # COMP_CWORD is the last word
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _stitch_complete
           echo "${COMPREPLY[*]}"' _ "$prefix/share/bash-completion/completions/stitch" "$@"
}
expect() {
  if [[ $2 != "$3" ]]; then
    echo "consumer: $1 gave '$2', expected '$3'" >&2
    exit 1
  fi
}
expect "completing 'stitch ins'" "$(complete_words stitch ins)" inspect
expect "completing 'stitch inspect m.pt --ar'" "$(complete_words stitch inspect m.pt --ar)" --archive
expect "completing 'stitch --threads 2 check --js'" "$(complete_words stitch --threads 2 check --js)" --json
expect "completing 'stitch completion z'" "$(complete_words stitch completion z)" zsh
head -1 "$prefix/share/zsh/site-functions/_stitch" | grep -qx '#compdef stitch'
page=$prefix/share/man/man1/stitch.1
grep -q '^\.SS export\\-checkpoint' "$page"
warnings=$(groff -ww -z -man "$page" 2>&1)
expect "groff -ww on the man page" "$warnings" ""
