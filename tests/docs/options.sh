# options.sh BUILD_DIR PAGE: every option `uffdkit --help` prints has an
# entry in the OPTIONS section of uffdkit(8), and every long option listed
# there is one --help prints.
source "$(dirname "$0")/lib.sh"
need_man
BUILD=${1:?usage: options.sh BUILD_DIR PAGE}
PAGE=${2:?usage: options.sh BUILD_DIR PAGE}
UFFDKIT=$BUILD/bin/uffdkit
[ -x "$UFFDKIT" ] || fail "$UFFDKIT is missing: build the uffdkit target"

help=$("$UFFDKIT" --help) || fail "uffdkit --help failed"
mapfile -t in_help < <(grep -o -- '--[a-z][a-z-]*' <<<"$help" | sort -u)
[ ${#in_help[@]} -ge 5 ] || fail "found only ${#in_help[@]} options in uffdkit --help"

options=$(render "$PAGE" | section OPTIONS)
# The tags: lines indented by the section's 7 columns that start an option.
mapfile -t in_page < <(grep -E '^ {7}-' <<<"$options" |
  grep -o -- '--[a-z][a-z-]*' | sort -u)

bad=0
for o in "${in_help[@]}"; do
  if printf '%s\n' "${in_page[@]}" | grep -qx -- "$o"; then
    echo "$o: documented"
  else
    echo "$o: printed by uffdkit --help but has no entry in OPTIONS of $PAGE" >&2
    bad=1
  fi
done
for o in "${in_page[@]}"; do
  printf '%s\n' "${in_help[@]}" | grep -qx -- "$o" || {
    echo "$o: listed in OPTIONS of $PAGE but not printed by uffdkit --help" >&2
    bad=1
  }
done
[ $bad -eq 0 ] || fail "uffdkit --help and $PAGE disagree"
