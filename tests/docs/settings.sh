# settings.sh BUILD_DIR PLUGIN PAGE: every setting `uffdkit --describe
# PLUGIN` prints has an entry in the SETTINGS section of the plugin's page,
# tagged "KEY (TYPE, required)" or "KEY (TYPE, default: VALUE)" as the
# plugin declares it, with ", secret" before the ")" for a setting the
# plugin keeps out of logs, and the page lists no setting the plugin lacks.
source "$(dirname "$0")/lib.sh"
need_man
BUILD=${1:?usage: settings.sh BUILD_DIR PLUGIN PAGE}
PLUGIN=${2:?usage: settings.sh BUILD_DIR PLUGIN PAGE}
PAGE=${3:?usage: settings.sh BUILD_DIR PLUGIN PAGE}
UFFDKIT=$BUILD/bin/uffdkit
[ -x "$UFFDKIT" ] || fail "$UFFDKIT is missing: build the uffdkit target"

desc=$("$UFFDKIT" --describe "$PLUGIN") || fail "uffdkit --describe $PLUGIN failed"
# Setting lines: "  KEY  TYPE  required" or "  KEY  TYPE  default: VALUE",
# each followed by its help indented by six.
settings=$(sed -n '/^settings:$/,$p' <<<"$desc" | grep -E '^  [a-z]' || true)
[ -n "$settings" ] || fail "uffdkit --describe $PLUGIN printed no settings"

tags=$(render "$PAGE" | section SETTINGS | grep -E '^ {7}[a-z]' || true)
[ -n "$tags" ] || fail "$PAGE has no SETTINGS entries"

bad=0
declare -A declared=()
while read -r line; do
  key=$(awk '{print $1}' <<<"$line")
  declared[$key]=1
  rest=$(sed -E 's/^ *[^ ]+ +//' <<<"$line")
  secret=
  [[ $rest == *" (secret)" ]] && secret=", secret"
  rest=${rest% (secret)}
  if [[ $rest == *" required"* ]]; then
    type=${rest%% required*}
    want="($(sed -E 's/ +$//' <<<"$type"), required$secret)"
  else
    type=$(sed -E 's/ +default:.*//' <<<"$rest")
    def=$(sed -E 's/.*default: //' <<<"$rest")
    want="($type, default: $def$secret)"
  fi
  tag=$(grep -E "^ {7}$key( |$)" <<<"$tags" || true)
  if [ -z "$tag" ]; then
    echo "$key: printed by uffdkit --describe $PLUGIN but not in SETTINGS of $PAGE" >&2
    bad=1
  elif [[ $tag != *"$want"* ]]; then
    echo "$key: $PAGE says '$(sed 's/^ *//' <<<"$tag")', the plugin declares $want" >&2
    bad=1
  else
    echo "$key $want: documented"
  fi
done <<<"$settings"
while read -r tag; do
  key=$(awk '{print $1}' <<<"$tag")
  # No `printf | grep -q` here: see options.sh.
  [ -n "${declared[$key]:-}" ] || {
    echo "$key: in SETTINGS of $PAGE but not a setting of $PLUGIN" >&2
    bad=1
  }
done <<<"$tags"
[ $bad -eq 0 ] || fail "uffdkit --describe $PLUGIN and $PAGE disagree"
