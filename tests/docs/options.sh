# options.sh BUILD_DIR PAGE [COMMAND...]: every long option `uffdkit
# COMMAND... --help` prints has an entry in the OPTIONS section of PAGE, every
# long option listed there is one --help prints, and every short option
# --help prints is in an entry too.  Without COMMAND: `uffdkit --help` and
# uffdkit(8); with `ctl`: `uffdkit ctl --help` and uffdkit-ctl(8).
#
# Lists are compared with here-strings and associative arrays, never with
# `printf ... | grep -q`: grep -q exits at its first match, and under
# pipefail the SIGPIPE that printf may then get fails the pipeline, at
# random, more often on a loaded machine.
source "$(dirname "$0")/lib.sh"
need_man
BUILD=${1:?usage: options.sh BUILD_DIR PAGE [COMMAND...]}
PAGE=${2:?usage: options.sh BUILD_DIR PAGE [COMMAND...]}
shift 2
UFFDKIT=$BUILD/bin/uffdkit
[ -x "$UFFDKIT" ] || fail "$UFFDKIT is missing: build the uffdkit target"
what="uffdkit${*:+ $*} --help"

help=$("$UFFDKIT" "$@" --help) || fail "$what failed"
help_long=$(grep -o -- '--[a-z][a-z-]*' <<<"$help" | sort -u || true)
# Short options: "-x," or "-x " starting an option line of the help.
help_short=$(grep -oE -- '^ +-[a-zA-Z](,| )' <<<"$help" |
  grep -oE -- '-[a-zA-Z]' | sort -u || true)
[ "$(wc -l <<<"$help_long")" -ge 5 ] ||
  fail "found only $(wc -l <<<"$help_long") options in $what"

options=$(render "$PAGE" | section OPTIONS)
# The tags: lines indented by the section's 7 columns that start an option.
tags=$(grep -E '^ {7}-' <<<"$options" || true)
[ -n "$tags" ] || fail "$PAGE has no option entries in OPTIONS"
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
[ $bad -eq 0 ] || fail "$what and $PAGE disagree"
