# A listener's stack has one name wherever it is shown: the worker's log
# line, `uffdkit ctl list` (text and --json) and the metrics name it alike
# (the source, then the layers in the order listed: "file+readahead+cache"),
# and a plugin loaded by path is named by its file (libmmap.so: "mmap"),
# not shown as the path in one place and by name in another.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/../core/common.sh"

PLUGINS=$BUILD/lib/uffdkit/plugins
need_built "$PLUGINS/libmmap.so"
sim 0 img mkimage "$TMP/mem" --size 4M --seed 5
CTL=$TMP/ctl.sock
cat >"$TMP/d.conf" <<EOF2
uffdkit = { control_socket = "$CTL"; };
listeners = (
  { name = "lay"; socket = "$TMP/lay.sock";
    source = { plugin = "file"; path = "$TMP/mem"; };
    layers = ( { layer = "readahead"; }, { layer = "cache"; size = "4M"; } ); },
  { name = "bypath"; socket = "$TMP/bypath.sock";
    source = { plugin = "$PLUGINS/libmmap.so"; path = "$TMP/mem"; }; }
);
EOF2
start_daemon d "$TMP/lay.sock" --config "$TMP/d.conf"
wait_log d "worker [0-9]+ ready"
sim 0 vm run --socket "$TMP/lay.sock" --image "$TMP/mem"
verified vm 1024
ctl --json list >"$TMP/list.json"
ctl list >"$TMP/list.txt"
ctl metrics >"$TMP/metrics.txt"

for pair in lay:file+readahead+cache bypath:mmap; do
  l=${pair%%:*} want=${pair#*:}
  logged=$(grep -E -o "listener $l: [^,]+, [0-9]+ bytes" "$TMP/d.log" |
    sed -E "s/^listener $l: ([^,]+),.*/\1/" | head -1)
  listed=$(json "[x['source'] for x in j['listeners'] if x['name'] == '$l'][0]" \
    <"$TMP/list.json")
  table=$(awk -v l="$l" '$1 == l { print $3; exit }' "$TMP/list.txt")
  metric=$(grep -E "^uffdkit_listener_info\{listener=\"$l\"," \
    "$TMP/metrics.txt" | sed -E 's/.*,source="([^"]*)".*/\1/')
  echo "$l: log '$logged', ctl --json '$listed', ctl '$table', metrics '$metric'"
  for got in "$logged" "$listed" "$table" "$metric"; do
    [ "$got" = "$want" ] ||
      fail "$l: named '$logged' in the log, '$listed' by ctl --json list," \
        "'$table' by ctl list, '$metric' in the metrics; expected '$want'"
  done
done
stop_daemons
