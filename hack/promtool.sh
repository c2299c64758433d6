#!/usr/bin/env bash
# Prints the path of a promtool binary, building it from its Go module when it is not cached:
#   go install github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION
# into ${BRIX_PROMTOOL_CACHE:-~/.cache/brix/promtool}/$PROMTOOL_VERSION/ (a few minutes on 2 cores,
# ~300 MiB of modules the first time). A promtool already on PATH is used as is.
# Exit 3 with a message when neither promtool nor the Go toolchain is available.
#   hack/promtool.sh --cached   print it only if it is already there (exit 1 otherwise; never builds)
set -euo pipefail
version="${PROMTOOL_VERSION:-v0.316.0}"   # the Go module version of Prometheus 3.x's promtool
if command -v promtool >/dev/null 2>&1 && [ -z "${BRIX_PROMTOOL_BUILD:-}" ]; then
    command -v promtool
    exit 0
fi
out="${BRIX_PROMTOOL_CACHE:-$HOME/.cache/brix/promtool}/$version"
if [ -x "$out/promtool" ]; then
    echo "$out/promtool"
    exit 0
fi
if [ "${1:-}" = "--cached" ]; then   # look only; never build
    exit 1
fi
if ! command -v go >/dev/null 2>&1; then
    echo "hack/promtool.sh: neither promtool nor the Go toolchain (go) is on PATH; install one of them" >&2
    exit 3
fi
mkdir -p "$out"
echo "hack/promtool.sh: building promtool $version with go install into $out (first time only)" >&2
CGO_ENABLED=0 GOBIN="$out" GOFLAGS=-buildvcs=false \
    go install -trimpath -ldflags='-s -w' "github.com/prometheus/prometheus/cmd/promtool@$version" >&2
echo "$out/promtool"
