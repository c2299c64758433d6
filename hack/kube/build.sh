#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler and etcd from their published Go
# modules (versions pinned in hack/kube/go.mod and hack/kube/etcd/go.mod) into a cache folder keyed
# by those versions. A binary already there is not built again.
#
#   hack/kube/build.sh            build what is missing, print the folder
#   hack/kube/build.sh --print    print the folder only (exit 1 when something is missing)
#
# BRIX_KUBE_CACHE overrides the cache root (default ~/.cache/brix/kube). One binary is linked at a
# time: linking kube-apiserver takes a few GiB of memory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

version_of() { # module go.mod -> the version required in that go.mod
    awk -v m="$1" '$1 == "require" && $2 == m {print $3} $1 == m && NF >= 2 {print $2}' "$2" | head -1
}
kube_version="$(version_of k8s.io/kubernetes "$here/go.mod")"
etcd_version="$(version_of go.etcd.io/etcd/server/v3 "$here/etcd/go.mod")"
out="${BRIX_KUBE_CACHE:-$HOME/.cache/brix/kube}/${kube_version}-etcd-${etcd_version}"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler)

missing=()
for b in "${binaries[@]}"; do [ -x "$out/$b" ] || missing+=("$b"); done
if [ "${1:-}" = "--print" ]; then
    echo "$out"
    [ ${#missing[@]} -eq 0 ]
    exit
fi
if [ ${#missing[@]} -eq 0 ]; then
    echo "$out"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    cat >&2 <<EOF
hack/kube: the Go toolchain is missing, so the Kubernetes control plane cannot be built.
  Install Go 1.26 or newer (https://go.dev/doc/install, or your distribution's golang package),
  make sure 'go' is on PATH, and run 'make kube' again.
  Without it, 'brix up' falls back to --standalone and the tests marked 'kube' are skipped
  (outside CI).
EOF
    exit 3
fi

mkdir -p "$out"
export CGO_ENABLED=0
echo "hack/kube: building ${missing[*]} (Kubernetes $kube_version, etcd $etcd_version) into $out" >&2
echo "hack/kube: the first build downloads ~1 GiB of modules and takes a while on 2 cores" >&2
for b in "${missing[@]}"; do
    start=$(date +%s)
    case "$b" in
        etcd) dir="$here/etcd"; pkg=go.etcd.io/etcd/server/v3 ;;
        *) dir="$here"; pkg="k8s.io/kubernetes/cmd/$b" ;;
    esac
    echo "hack/kube: [$b] building $pkg ..." >&2
    (cd "$dir" && go build -trimpath -ldflags='-s -w' -o "$out/$b.tmp" "$pkg")
    mv "$out/$b.tmp" "$out/$b"
    echo "hack/kube: [$b] done in $(( $(date +%s) - start )) s, $(du -h "$out/$b" | cut -f1)" >&2
done
echo "$out"
