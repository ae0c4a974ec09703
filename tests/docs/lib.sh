# Helpers of the documentation tests (sourced by tests/docs/*.sh).
set -euo pipefail

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

need_man() {
  local t
  for t in man groff col; do
    if ! command -v "$t" >/dev/null; then
      echo "$t is not installed (Debian: man-db, groff-base, bsdextrautils): skipped" >&2
      exit 77
    fi
  done
}

# render PAGE: the page as plain ASCII text, wide enough that no line of a
# tag or of an example wraps.
render() {
  MANWIDTH=250 man -E ascii -l "$1" 2>/dev/null | col -bx
}

# section NAME: the lines of section NAME of a rendered page on stdin,
# without its heading, up to the next section heading.
section() {
  awk -v name="$1" '
    /^[A-Z]/ { on = ($0 == name); next }
    on { print }'
}
