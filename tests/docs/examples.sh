# examples.sh BUILD_DIR SOURCE_DIR [PAGE...]: conf/uffdkit.conf, the
# EXAMPLE of uffdkit.conf(5) and the config in the SYNOPSIS of each source
# page given pass uffdkit --check-config.
source "$(dirname "$0")/lib.sh"
need_man
BUILD=${1:?usage: examples.sh BUILD_DIR SOURCE_DIR [PAGE...]}
SRC=${2:?usage: examples.sh BUILD_DIR SOURCE_DIR [PAGE...]}
shift 2
UFFDKIT=$BUILD/bin/uffdkit
[ -x "$UFFDKIT" ] || fail "$UFFDKIT is missing: build the uffdkit target"
# The S3 example of uffdkit-http(5) takes its credentials from the
# environment, as it says.
export AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=example
TMP=$(mktemp -d /tmp/uffdkit-docs.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

check() {
  local what=$1 file=$2 out
  out=$("$UFFDKIT" --check-config "$file" 2>&1) ||
    fail "$what does not pass uffdkit --check-config: $out"
  echo "$what: $out"
}

check conf/uffdkit.conf "$SRC/conf/uffdkit.conf"

render "$SRC/core/uffdkit.conf.5" | section EXAMPLE >"$TMP/example.conf"
grep -q '^ *listeners = ($' "$TMP/example.conf" ||
  fail "uffdkit.conf(5) has no EXAMPLE with listeners"
check "EXAMPLE of uffdkit.conf(5)" "$TMP/example.conf"

for page in "$@"; do
  # The first listeners = ( ... ); block, up to the line that closes it
  # (a "layers = ( ... );" inside it ends with ");" too).  awk reads to the
  # end rather than exiting there, so nothing upstream can be cut off by
  # SIGPIPE.
  render "$page" | section SYNOPSIS |
    awk '!done && /^ *listeners = \($/ { on = 1 }
      on { print }
      on && /^ *(\} *)?\);$/ { on = 0; done = 1 }' >"$TMP/synopsis.conf"
  [ -s "$TMP/synopsis.conf" ] || fail "$page: no config in its SYNOPSIS"
  check "SYNOPSIS of $(basename "$page")" "$TMP/synopsis.conf"
done
