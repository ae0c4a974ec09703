# The bytes on the socket: one sendmsg, compact JSON in declaration order,
# the uffd in SCM_RIGHTS, and the socket's fate per Firecracker version.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"
command -v python3 >/dev/null || skip "python3 is needed"

sim 0 img mkimage "$TMP/mem" --size 6M
N='[0-9]+'

# handshake NAME ARGS...: the simulator sends to peer.py, which reports.
handshake() {
  local name=$1
  shift
  rm -f "$TMP/peer.sock"
  python3 "$(dirname "$0")/peer.py" "$TMP/peer.sock" "$TMP/$name.peer" \
    2>"$TMP/$name-peer.log" &
  local peer=$!
  sim 0 "$name" run --socket "$TMP/peer.sock" --image "$TMP/mem" \
    --touch-percent 0 --timeout 10 "$@"
  wait $peer || fail "$name: peer.py failed: $(cat "$TMP/$name-peer.log")"
  echo "$name: $(cat "$TMP/$name.peer")"
}

payload_is() {
  head -1 "$TMP/$1.peer" | grep -q -x -E "$2" ||
    fail "$1: payload $(head -1 "$TMP/$1.peer") does not match $2"
}

facts_are() {
  sed -n 2p "$TMP/$1.peer" | grep -q -E "$2" ||
    fail "$1: $(sed -n 2p "$TMP/$1.peer") does not match $2"
}

UFFD='anon_inode:\[userfaultfd\]'

handshake v1.1 --style 1.1
payload_is v1.1 "\[\{\"base_host_virt_addr\":$N,\"size\":6291456,\"offset\":0\}\]"
facts_are v1.1 "^fds=1 kinds=$UFFD first_bytes=$N first_fds=1 reads=1 closed=1$"

handshake v1.7 --style 1.7
payload_is v1.7 "\[\{\"base_host_virt_addr\":$N,\"size\":6291456,\"offset\":0,\"page_size_kib\":4096\}\]"
facts_are v1.7 "closed=1$"

# 1.12 keeps the socket open while the VM lives (--hold).
handshake v1.12 --hold 1.5
payload_is v1.12 "\[\{\"base_host_virt_addr\":$N,\"size\":6291456,\"offset\":0,\"page_size\":4096,\"page_size_kib\":4096\}\]"
facts_are v1.12 "^fds=1 kinds=$UFFD .*reads=1 closed=0$"

# Three regions: 2 MiB each, consecutive offsets, growing gaps.
handshake r3 --regions 3 --style 1.1
R="\{\"base_host_virt_addr\":($N),\"size\":2097152,\"offset\":"
payload_is r3 "\[${R}0\},${R}2097152\},${R}4194304\}\]"
read -r b0 b1 b2 <<<"$(head -1 "$TMP/r3.peer" | grep -o -E 'addr":[0-9]+' |
  cut -d: -f2 | tr '\n' ' ')"
[ $((b1 - b0)) -eq $((2097152 + 4096)) ] || fail "gap 0-1 is $((b1 - b0 - 2097152))"
[ $((b2 - b1)) -eq $((2097152 + 8192)) ] || fail "gap 1-2 is $((b2 - b1 - 2097152))"

handshake regions7 --regions 7 --mem-size 4M
[ "$(head -1 "$TMP/regions7.peer" | grep -o '"size":' | wc -l)" -eq 7 ] ||
  fail "--regions 7 did not send 7 regions"
# 1024 pages over 7 regions: 147, 147, then 146 pages each.
sizes=$(head -1 "$TMP/regions7.peer" | grep -o '"size":[0-9]*' | cut -d: -f2 |
  tr '\n' ' ')
[ "$sizes" = "602112 602112 598016 598016 598016 598016 598016 " ] ||
  fail "--regions 7 sizes are not as equal as possible: $sizes"

handshake extra --extra-fds 3 --style 1.1
facts_are extra "^fds=4 kinds=$UFFD,/dev/null,/dev/null,/dev/null first_bytes=$N first_fds=4 "

handshake nofd --no-fd --style 1.1
facts_are nofd "^fds=0 "

handshake split --split-send 10 --style 1.1
facts_are split "first_bytes=10 first_fds=1 reads=2 "

printf 'not json' >"$TMP/raw"
handshake raw --raw-handshake "$TMP/raw" --style 1.1
payload_is raw "not json"
