#!/bin/bash
# 200 restores in flight at once: 200 `ctl serve` requests sent together,
# each followed by its VM as soon as its answer comes, all VMs faulting at
# the same time; every serve answered with its own socket, every VM
# byte-exact, every restore removed at the end, and the daemon's
# per-template totals count exactly 200 serves and 200 sessions.
. "$(dirname "$0")/common.sh"
N=${SERVE_MANY:-200}

build b1 51 256
template_conf "$TMP/d.conf" "max_restores = $N;"
start_daemon d "$CTL" --config "$TMP/d.conf" --plugin-dir "$PLUGINS"
mkdir -p "$TMP/runs"

# one I: serve restore rI, then restore a VM from the socket it answered.
one() {
  local i=$1 out
  # 200 serves queue behind each other's source starts: under a sanitizer
  # that takes longer than ctl's default 10 s.
  out=$("$CTL_BIN" ctl --socket "$CTL" --timeout 180 serve sandbox build_id=b1 \
    sandbox_id="s$i" --id "r$i" 2>&1) || {
    echo "serve r$i: $out" >"$TMP/runs/$i.fail"
    return
  }
  [ "$out" = "r$i $TMP/sb/s$i.sock" ] || {
    echo "serve r$i answered: $out" >"$TMP/runs/$i.fail"
    return
  }
  "$SIM" run --socket "$TMP/sb/s$i.sock" --image "$STORE/b1/mem" \
    --timeout 240 >"$TMP/runs/$i.out" 2>"$TMP/runs/$i.err" ||
    echo "VM r$i exited with $?: $(cat "$TMP/runs/$i.err")" >"$TMP/runs/$i.fail"
}

pids=()
for ((i = 0; i < N; i++)); do
  one $i &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done

failed=$(find "$TMP/runs" -name '*.fail' | wc -l)
[ "$failed" -eq 0 ] || fail "$failed of $N restores failed, e.g. $(cat "$(find "$TMP/runs" -name '*.fail' | head -1)")"
for ((i = 0; i < N; i++)); do
  grep -q "pages=256 .*mismatches=0" "$TMP/runs/$i.out" ||
    fail "VM r$i: $(cat "$TMP/runs/$i.out")"
done

# Every restore is removed once its VM has gone (one_shot sockets).
for ((t = 0; t < 200; t++)); do
  left=$(sctl --json list | json 'len(j["restores"])')
  [ "$left" = 0 ] && break
  sleep 0.1
done
[ "$left" = 0 ] || fail "$left restores still listed after every VM ended"
totals=$(sctl --json stats |
  json '[(t["name"], t["serves_total"], t["sessions_total"], t["restores_live"]) for t in j["templates"]]')
[ "$totals" = "[('sandbox', $N, $N, 0)]" ] || fail "template totals: $totals"
echo "serve-many: $N restores served at once, every byte right; totals $totals"
stop_daemons
