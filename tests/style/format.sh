#!/bin/bash
# format.sh SOURCE_DIR: fails naming each C file clang-format would change.
set -u
cd "$1" || exit 1
command -v clang-format >/dev/null || {
  echo "clang-format is not installed" >&2
  exit 77
}
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.c' '*.h')
else
  mapfile -t files < <(find . -path ./build\* -prune -o \( -name '*.c' -o -name '*.h' \) -print)
fi
bad=0
for f in "${files[@]}"; do
  if ! clang-format --dry-run -Werror "$f" 2>/dev/null; then
    echo "not formatted: $f (clang-format -i $f)" >&2
    bad=$((bad + 1))
  fi
done
echo "${#files[@]} files checked, $bad not formatted"
[ "$bad" -eq 0 ]
