# options.sh BUILD_DIR PAGE PROGRAM [COMMAND...]: every long option
# `PROGRAM COMMAND... --help` prints has an entry in the OPTIONS section of
# PAGE, every long option listed there is one --help prints, and every short
# option --help prints is in an entry too.  A page that shows a command's
# options in the command's entry of COMMANDS (uffdkit-snap(1)) has them
# counted there.  PROGRAM is a file of BUILD_DIR/bin: `uffdkit` with
# uffdkit(8), `uffdkit ctl` with uffdkit-ctl(8), uffdkit-sim(1),
# uffdkit-snap(1).
#
# Lists are compared with here-strings and associative arrays, never with
# `printf ... | grep -q`: grep -q exits at its first match, and under
# pipefail the SIGPIPE that printf may then get fails the pipeline, at
# random, more often on a loaded machine.
source "$(dirname "$0")/lib.sh"
need_man
usage="usage: options.sh BUILD_DIR PAGE PROGRAM [COMMAND...]"
BUILD=${1:?$usage}
PAGE=${2:?$usage}
NAME=${3:?$usage}
shift 3
PROGRAM=$BUILD/bin/$NAME
[ -x "$PROGRAM" ] || fail "$PROGRAM is missing: build the $NAME target"
what="$NAME${*:+ $*} --help"

help=$("$PROGRAM" "$@" --help) || fail "$what failed"
help_long=$(grep -o -- '--[a-z][a-z-]*' <<<"$help" | sort -u || true)
# Short options: "-x," or "-x " starting an option line of the help.
help_short=$(grep -oE -- '^ +-[a-zA-Z](,| )' <<<"$help" |
  grep -oE -- '-[a-zA-Z]' | sort -u || true)
[ "$(wc -l <<<"$help_long")" -ge 5 ] ||
  fail "found only $(wc -l <<<"$help_long") options in $what"

page=$(render "$PAGE")
options=$(section OPTIONS <<<"$page")
# The tags: lines indented by the section's 7 columns that start an option,
# and the tags of COMMANDS, which may name a command's options.
tags=$(grep -E '^ {7}-' <<<"$options" || true)
[ -n "$tags" ] || fail "$PAGE has no option entries in OPTIONS"
tags+=$'\n'$(section COMMANDS <<<"$page" | grep -E '^ {7}[a-z]' || true)
page_long=$(grep -o -- '--[a-z][a-z-]*' <<<"$tags" | sort -u || true)
page_short=$(grep -oE -- '(^|[ ,])-[a-zA-Z]( |,|$)' <<<"$tags" |
  grep -oE -- '-[a-zA-Z]' | sort -u || true)

declare -A in_help=() in_page=() short_in_page=()
for o in $help_long; do in_help[$o]=1; done
for o in $page_long; do in_page[$o]=1; done
for o in $page_short; do short_in_page[$o]=1; done

bad=0
for o in $help_long; do
  if [ -n "${in_page[$o]:-}" ]; then
    echo "$o: documented"
  else
    echo "$o: printed by $what but has no entry in OPTIONS of $PAGE" >&2
    bad=1
  fi
done
for o in $page_long; do
  [ -n "${in_help[$o]:-}" ] || {
    echo "$o: listed in OPTIONS of $PAGE but not printed by $what" >&2
    bad=1
  }
done
for o in $help_short; do
  if [ -n "${short_in_page[$o]:-}" ]; then
    echo "$o: documented"
  else
    echo "$o: printed by $what but in no entry of OPTIONS of $PAGE" >&2
    bad=1
  fi
done
# Commands: each one a "Commands:" block of --help lists (by its first
# word) has an entry in COMMANDS of PAGE, and the page lists no other.
help_cmds=$(awk '/^Commands:/ { on = 1; next } on && /^[^ ]/ { on = 0 }
  on && /^  [a-z]/ { print $1 }' <<<"$help" | sort -u)
page_cmds=$(section COMMANDS <<<"$page" | { grep -E '^ {7}[a-z]' || true; } |
  awk '{ print $1 }' | sort -u)
if [ "$help_cmds" != "$page_cmds" ]; then
  echo "commands: $what lists [$(echo $help_cmds)], COMMANDS of $PAGE" \
    "[$(echo $page_cmds)]" >&2
  bad=1
elif [ -n "$help_cmds" ]; then
  echo "commands $(echo $help_cmds): documented"
fi
[ $bad -eq 0 ] || fail "$what and $PAGE disagree"
