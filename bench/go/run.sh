#!/usr/bin/env bash
# Builds the Go benchmark runner offline (GOPATH mode, against the library sources Debian's
# packages install) and runs it; the arguments go to the runner.
#
#   bench/go/run.sh [-quick] [-only PREFIX[,PREFIX...]] [-scale]   JSON lines on stdout
#   bench/go/run.sh vet                                            gofmt + go vet, no run
#
# GOCODE overrides the GOPATH root holding src/golang.org/x/{sync,time} (/usr/share/gocode).
# Exits 127 when go or a library source is missing, naming the packages to install.
set -euo pipefail

gocode="${GOCODE:-/usr/share/gocode}"
install_hint="apt-get install -y golang-go golang-golang-x-sync-dev golang-golang-x-time-dev"

missing() {
	echo "bench/go: $1" >&2
	echo "bench/go: install the Go toolchain and libraries with: $install_hint" >&2
	echo "bench/go: (or set GOCODE to a GOPATH root that holds them)" >&2
	exit 127
}

command -v go >/dev/null 2>&1 || missing "the go command is not on PATH"
for pkg in golang.org/x/sync/errgroup golang.org/x/time/rate; do
	if ! ls "$gocode/src/$pkg"/*.go >/dev/null 2>&1; then
		missing "no source of $pkg under $gocode/src"
	fi
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Offline GOPATH mode: nothing is downloaded, imports resolve under $gocode/src.
export GO111MODULE=off GOPATH="$gocode:$tmp" GOPROXY=off GOTOOLCHAIN=local GOFLAGS=
if [ -z "${GOCACHE:-}" ] && [ -z "${XDG_CACHE_HOME:-}" ] && [ -z "${HOME:-}" ]; then
	export GOCACHE="$tmp/cache"
fi

cd "$here"
if [ "${1:-}" = vet ]; then
	unformatted="$(gofmt -l .)"
	if [ -n "$unformatted" ]; then
		echo "bench/go: not gofmt-formatted: $unformatted" >&2
		exit 1
	fi
	go vet .
	echo "bench/go: gofmt and go vet clean" >&2
	exit 0
fi

go build -o "$tmp/bench-go" . >&2
status=0
"$tmp/bench-go" "$@" || status=$?
exit "$status"
