#!/bin/bash
# clients/go against the real daemon: `go test` with UFFDKIT_BUILD set, so
# its tests start the daemon built here and restore through the simulator.
source "$(dirname "$0")/../lib/functions.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
need_built "$UFFDKIT" "$SIM"
command -v go >/dev/null || skip "go is missing (Debian's golang-go; tools/dev deps)"
# No network: the package uses the standard library only.
export GOFLAGS=-mod=mod GOPROXY=off GOPATH=$TMP/gopath \
  GOCACHE=$BUILD/go-cache UFFDKIT_BUILD=$BUILD
cd "$SRC/clients/go"
go vet ./... || fail "go vet found problems"
rc=0
go test -count=1 -v ./... >"$TMP/go-test.out" 2>&1 || rc=$?
cat "$TMP/go-test.out"
[ $rc -eq 0 ] || fail "go test exited with $rc"
grep -q -- "--- SKIP" "$TMP/go-test.out" && fail "a Go test skipped"
echo "clients-go: $(grep -c -- '--- PASS' "$TMP/go-test.out") tests passed"
