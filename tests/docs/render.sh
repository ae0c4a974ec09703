# render.sh PAGE...: each man page formats without a warning, through man
# (as man-db shows it) and through groff with every warning enabled.
source "$(dirname "$0")/lib.sh"
need_man
[ $# -gt 0 ] || fail "usage: render.sh PAGE..."
for page in "$@"; do
  [ -s "$page" ] || fail "$page is missing or empty"
  out=$(man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null) ||
    fail "$page: man failed: $out"
  [ -z "$out" ] || fail "$page: man warns: $out"
  out=$(groff -man -ww -z "$page" 2>&1) || fail "$page: groff failed: $out"
  [ -z "$out" ] || fail "$page: groff warns: $out"
  [ "$(render "$page" | section NAME | wc -l)" -ge 1 ] ||
    fail "$page: no NAME section"
  echo "$page: renders without warnings"
done
