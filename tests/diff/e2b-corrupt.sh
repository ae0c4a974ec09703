#!/bin/bash
# Damaged E2B v4/v5 headers and frames are refused, with messages naming
# what and where, and never installed.
#   headers  a V5 and a V4 header damaged eight ways (bad LZ4 frame, U one
#            too many, trailing bytes, a build described twice, codec 3,
#            overlapping frames, an overflowing varint, an upload still
#            pending): the diff source refuses to start, the daemon exits 1
#            and its log names the file and the place; uffdkit-snap inspect
#            says the same;
#   frames   one bit flipped inside a zstd frame, and an lz4 frame cut
#            short (its end mark turned into the header of a block that
#            never comes): a VM restored with on_source_error = "kill" is
#            killed at the first page of that frame, the log names the
#            object, the frame and the codec's complaint, every page
#            installed before it was right (strict-vmm checks each page the
#            moment its fault returns), and the daemon lives on;
#   verify   uffdkit-snap verify names the damaged frame, and the SHA-256
#            mismatch of an uncompressed V4 build changed after writing.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/../core/common.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

VMM=$BUILD/bin/test-http-strict-vmm
CORRUPT=$BUILD/bin/test-diff-corrupt
command -v python3 >/dev/null || skip "python3 is needed"
need_built "$UFFDKIT" "$SNAP" "$VMM" "$CORRUPT"

SIZE=$((16 << 20))
python3 "$HERE/images.py" "$TMP" $SIZE compressible
S=$TMP/store
G0=$("$SNAP" create "$TMP/m0" "$S")
G1=$("$SNAP" diff "$S" "$G0" "$TMP/m1" --header-version 4 --codec zstd \
  --frame-size 64K)
G2=$("$SNAP" diff "$S" "$G1" "$TMP/m2" --header-version 5 --codec lz4 \
  --frame-size 64K)

# ---- headers ----
# refused VERSION_BUILD KIND REGEX: the damaged header of build is refused.
refused() {
  local build=$1 kind=$2 re=$3 rc=0
  local bad=$TMP/bad/$build/memfile.header
  mkdir -p "$TMP/bad/$build"
  "$CORRUPT" "$S/$build/memfile.header" "$bad" "$kind" ||
    fail "cannot damage the header ($kind)"
  cat >"$TMP/h.conf" <<CONF
uffdkit = { control_socket = ""; };
listeners = ( { name = "h"; socket = "$TMP/h.sock";
    source = { plugin = "diff"; header = "$bad";
               diffs = "$S/{build_id}/memfile"; }; } );
CONF
  timeout 60 "$UFFDKIT" --config "$TMP/h.conf" >"$TMP/h-$kind.log" 2>&1 ||
    rc=$?
  [ $rc -eq 1 ] || fail "$kind: the daemon exited $rc, not 1"
  grep -qE -- "$(printf %q "$bad" | sed 's/[.]/[.]/g'): $re" "$TMP/h-$kind.log" || {
    cat "$TMP/h-$kind.log" >&2
    fail "$kind: the log does not say '$re'"
  }
  rc=0
  "$SNAP" inspect "$TMP/bad" "$build" >/dev/null 2>"$TMP/i-$kind.err" || rc=$?
  [ $rc -eq 1 ] && grep -qE -- "$re" "$TMP/i-$kind.err" ||
    fail "$kind: uffdkit-snap inspect: $rc, $(cat "$TMP/i-$kind.err")"
  echo "$kind: $(grep -oE -- "$re.*" "$TMP/h-$kind.log" | head -1)"
}
refused "$G2" lz4-bit \
  "the LZ4 frame of the inner block \(byte 69\) is corrupt .*Checksum"
refused "$G2" u-plus-one \
  "the LZ4 frame decodes to [0-9]+ bytes, but U \(byte 65\) is [0-9]+"
refused "$G2" trailing "4 bytes after the LZ4 frame, which ends at byte [0-9]+"
refused "$G2" duplicate "build entries 0 and [0-9]+ both describe build $G2"
refused "$G1" codec3 \
  "build entry 0 \($G1, inner byte 4\): Codec 3 is unknown"
refused "$G1" overlap "build entry [0-9]+ \([-0-9a-f]+, inner byte [0-9]+\): frame 1 starts at U 0x[0-9a-f]+, inside frame 0"
refused "$G2" varint \
  "V5 offset column, entry 0 \(inner byte [0-9]+\): varint overflows 64 bits"
refused "$G1" incomplete "Flags \(byte 64\) 0x01 has bit 0 \(IncompletePendingUpload\)"

# ---- frames ----
# Generation 2 reads generation 1's frames too: each listener gets a store
# with one damaged frame of its own.
S2=$TMP/store2
cp -r "$S" "$S2"
# frame_starts FILE: byte offsets of the frames (each starts with a magic).
frame_starts() {
  python3 - "$1" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
for m in (b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18"):
    at = data.find(m)
    while at >= 0:
        print(at)
        at = data.find(m, at + 1)
PY
}

# A bit in the middle of the second zstd frame of generation 1.
starts=($(frame_starts "$S/$G1/memfile.zstd"))
python3 - "$S/$G1/memfile.zstd" $(((starts[1] + starts[2]) / 2)) <<'PY'
import sys
f = open(sys.argv[1], "r+b"); at = int(sys.argv[2])
f.seek(at); b = f.read(1); f.seek(at); f.write(bytes([b[0] ^ 0x08]))
PY
# The end mark of the third lz4 frame of generation 2 becomes the header of
# a 256-byte block: the frame ends before its data does.
starts=($(frame_starts "$S2/$G2/memfile.lz4"))
python3 - "$S2/$G2/memfile.lz4" $((starts[3] - 4)) <<'PY'
import sys
f = open(sys.argv[1], "r+b"); f.seek(int(sys.argv[2]))
f.write((256).to_bytes(4, "little"))
PY

cat >"$TMP/d.conf" <<CONF
uffdkit = { control_socket = ""; };
listeners = (
  { name = "g1"; socket = "$TMP/g1.sock"; on_source_error = "kill";
    source = { plugin = "diff"; header = "$S/$G1/memfile.header";
               diffs = "$S/{build_id}/memfile"; }; },
  { name = "g2"; socket = "$TMP/g2.sock"; on_source_error = "kill";
    source = { plugin = "diff"; header = "$S2/$G2/memfile.header";
               store = { plugin = "file";
                         path = "$S2/{build_id}/memfile{suffix}"; }; }; }
);
CONF
start_daemon d "$TMP/g1.sock" --config "$TMP/d.conf"
D=$(daemon_pid)

# killed NAME IMAGE OBJECT REGEX: the VM of listener NAME is killed at a
# damaged frame of OBJECT, having installed only right pages.
killed() {
  local name=$1 image=$2 object=$3 re=$4 rc=0 out=$TMP/vmm-$1.out
  "$VMM" "$TMP/$name.sock" "$image" 1 60 >"$out" 2>"$TMP/vmm-$name.log" &
  local pid=$!
  wait $pid || rc=$?
  if grep '^MISMATCH' "$out" >&2; then
    fail "$name: a wrong page was installed"
  fi
  [ $rc -eq 137 ] || {
    cat "$out" "$TMP/vmm-$name.log" >&2
    fail "$name: the VM exited with $rc, not killed by SIGKILL (137)"
  }
  grep -q '^verified' "$out" || fail "$name: killed before any page"
  local line
  line=$(grep -E "session [0-9]+ \(pid $pid\): source $name could not deliver" \
    "$TMP/d.log" | head -1)
  echo "$line" | grep -qE -- "$object: frame [0-9]+ of build [-0-9a-f]+ \(bytes [0-9]+ to [0-9]+, diff bytes 0x[0-9a-f]+\+0x[0-9a-f]+\) refused: $re" || {
    echo "$line" >&2
    fail "$name: the log does not name the frame and '$re'"
  }
  echo "$line" | grep -q "; killing the VM (on_source_error)" ||
    fail "$name: the log does not name the policy"
  kill -0 "$D" || fail "$name: the daemon died"
  echo "$name: $(grep '^verified' "$out" | tail -1) pages, then" \
    "${line#*could not deliver }"
}
killed g1 "$TMP/m1" "$S/$G1/memfile.zstd" "zstd: Restored data doesn't match checksum"
killed g2 "$TMP/m2" "store:$G2.lz4" "the lz4 frame is cut short"
stop_daemons

# ---- uffdkit-snap verify ----
# It decodes every frame a header reaches...
rc=0
"$SNAP" verify "$S" "$G1" 2>"$TMP/v1.err" >/dev/null || rc=$?
[ $rc -eq 1 ] && grep -q "$S/$G1/memfile.zstd: frame 1 (bytes [0-9]* to [0-9]*) refused: zstd: Restored data doesn't match checksum" "$TMP/v1.err" ||
  fail "verify of the damaged zstd frame: $rc, $(cat "$TMP/v1.err")"
# ...and checks the SHA-256 of each build, which alone guards an
# uncompressed V4 build.
G3=$("$SNAP" diff "$S2" "$G1" "$TMP/m2" --header-version 4 --codec none)
"$SNAP" verify "$S2" "$G3" >/dev/null || fail "verify $G3"
python3 - "$S2/$G3/memfile" <<'PY'
import sys
f = open(sys.argv[1], "r+b"); f.seek(5000); b = f.read(1); f.seek(5000)
f.write(bytes([b[0] ^ 1]))
PY
rc=0
"$SNAP" verify "$S2" "$G3" 2>"$TMP/v3.err" >/dev/null || rc=$?
[ $rc -eq 1 ] && grep -qE "verify: build $G3: the SHA-256 of its [0-9]+-byte uncompressed diff is [0-9a-f]{64}, but $S2/$G3/memfile.header gives [0-9a-f]{64}" "$TMP/v3.err" ||
  fail "verify of a changed uncompressed build: $rc, $(cat "$TMP/v3.err")"
echo "verify: $(cat "$TMP/v3.err")"
