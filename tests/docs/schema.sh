# schema.sh SOURCE_DIR: every setting of the daemon's own schema (the key
# tables of core/shared/config.c) has an entry in uffdkit.conf(5) giving its type
# and default, and every listener setting appears in conf/uffdkit.conf with
# its default.
source "$(dirname "$0")/lib.sh"
need_man
SRC=${1:?usage: schema.sh SOURCE_DIR}
PAGE=$SRC/core/uffdkit.conf.5
CONF=$SRC/conf/uffdkit.conf

# Lines such as  LK("max_sessions", K_INT, 0, max_sessions, "1024"),
# become "LK max_sessions K_INT 1024" (NULL for no default).
schema=$(sed -nE 's/^ *(LK|GK|PK)\("([a-z_]+)", (K_[A-Z]+), ([01], )?[a-z_]+, (NULL|"([^"]*)")\),.*/\1 \2 \3 \5/p' \
  "$SRC/core/shared/config.c" | sed -E 's/ "([^"]*)"$/ \1/')
[ "$(wc -l <<<"$schema")" -ge 20 ] ||
  fail "found only $(wc -l <<<"$schema") keys in core/shared/config.c: has its key table changed shape?"

type_name() {
  case $1 in
  K_STRING) echo string ;;
  K_INT) echo integer ;;
  K_BOOL) echo boolean ;;
  K_SIZE) echo size ;;
  K_DURATION) echo duration ;;
  K_GROUP) echo group ;;
  K_LIST) echo list ;;
  K_IDS) echo "array of integers" ;;
  *) echo "?" ;;
  esac
}

text=$(render "$PAGE")
bad=0
while read -r table key ktype def; do
  type=$(type_name "$ktype")
  tag=$(grep -E "^ +$key \(" <<<"$text" | head -n 1 || true)
  if [ -z "$tag" ]; then
    echo "$key: in core/shared/config.c but has no entry in uffdkit.conf(5)" >&2
    bad=1
    continue
  fi
  if [[ $tag != *"($type"* ]]; then
    echo "$key: uffdkit.conf(5) says '${tag#"${tag%%[! ]*}"}', the type is $type" >&2
    bad=1
    continue
  fi
  if [ "$def" != NULL ] && [[ $tag != *"default: $def)"* ]] &&
    [[ $tag != *"default: \"$def\")"* ]]; then
    echo "$key: uffdkit.conf(5) says '${tag#"${tag%%[! ]*}"}', the default is $def" >&2
    bad=1
    continue
  fi
  echo "$key ($type, default ${def/NULL/none}): in uffdkit.conf(5)"
  # The example config shows every listener and prefetch setting.
  if [ "$table" != GK ]; then
    line=$(grep -E "^[ #]*$key = " "$CONF" | head -n 1 || true)
    if [ -z "$line" ]; then
      echo "$key: not shown in conf/uffdkit.conf" >&2
      bad=1
    elif [ "$def" != NULL ] && ! grep -qE "= \"?$def\"?;" <<<"$line"; then
      echo "$key: conf/uffdkit.conf shows '$line', the default is $def" >&2
      bad=1
    fi
  fi
done <<<"$schema"
[ $bad -eq 0 ] || fail "core/shared/config.c, uffdkit.conf(5) and conf/uffdkit.conf disagree"
