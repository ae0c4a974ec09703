#!/bin/bash
# uffdkit-ctl(8) documents every command and option `uffdkit ctl --help`
# lists, and groff formats it without a warning.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/common.sh"
PAGE=$(dirname "$0")/../../core/uffdkit-ctl.8
command -v groff >/dev/null || skip "groff is needed"

warnings=$(groff -man -Tutf8 -ww -z "$PAGE" 2>&1)
[ -z "$warnings" ] || fail "groff: $warnings"
MANWIDTH=200 groff -man -Tutf8 -P-cbou "$PAGE" >"$TMP/page.txt" 2>/dev/null

"$UFFDKIT" ctl --help >"$TMP/help.txt"
options=$(grep -o -- '--[a-z][a-z-]*' "$TMP/help.txt" | sort -u)
[ -n "$options" ] || fail "no options in --help"
for o in $options; do
  grep -q -- "$o" "$TMP/page.txt" || fail "$o is not in the man page"
done
commands=$(sed -n '/^Commands:/,/^Options:/p' "$TMP/help.txt" |
  awk 'NR > 1 && /^  [a-z]/ { print $1 }')
[ "$(echo $commands)" = "list stats metrics reload drain serve stop watch" ] ||
  fail "commands in --help: $commands"
for c in $commands; do
  grep -Eq "^       $c( |$)" "$TMP/page.txt" || fail "command $c is not described"
done
# And the other way: every option the page describes exists.
for o in $(grep -Eo '^       (-[a-z], )?--[a-z-]+' "$TMP/page.txt" |
  grep -o -- '--[a-z-]*'); do
  grep -q -- "$o" "$TMP/help.txt" || fail "$o is in the man page, not in --help"
done
grep -q 'CONTROL_SOCKET' "$TMP/help.txt" && grep -q 'UFFDKIT_CONTROL_SOCKET' "$TMP/page.txt" ||
  fail "UFFDKIT_CONTROL_SOCKET"
echo "control-manpage: OK"
