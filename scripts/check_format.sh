#!/usr/bin/env bash
# Fails when a C++ file is not formatted as .clang-format says, with
# clang-format 14 (Debian 12's; another version formats a little
# differently, so the check runs only where clang-format-14 is).
#   bash scripts/check_format.sh          check (CI: the CTest test check_format)
#   bash scripts/check_format.sh --fix    reformat in place
set -euo pipefail
cd "$(dirname "$0")/.."
format=${CLANG_FORMAT:-clang-format-14}
mapfile -t files < <(git ls-files '*.cpp' '*.h' 2>/dev/null ||
                     find src include tools tests bench fuzz examples \( -name '*.cpp' -o -name '*.h' \))
if [[ ${1:-} == --fix ]]; then
  "$format" -i "${files[@]}"
  exit 0
fi
"$format" --dry-run --Werror "${files[@]}"
echo "check_format: ${#files[@]} files formatted as .clang-format says"
