#!/usr/bin/env bash
# Builds the sandbox's real components from their Go modules (versions: go.mod beside this file) into a
# per-user cache keyed by version, so that every checkout on this machine (CI's fresh clone too) builds
# them once. Go's module and build caches stay at their default per-user places.
#   build.sh            build what is missing, print where the binaries are and how long it took
#   build.sh --print    print the binaries' paths only (NAME=PATH lines), build nothing
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${LLMD_VERIFY_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmd-verify/bin}

# The version a module is required at, from go.mod (the single place versions are written); $2 names
# the module directory (default: this one; llm-d/ is the data plane's own module, whose k8s.io/* differ).
version() { awk -v m="$1" '$1 == m && $2 ~ /^v/ {print $2; exit}' "$here/${2:-.}/go.mod"; }

k8s=$(version k8s.io/kubernetes)
etcd=$(version go.etcd.io/etcd/server/v3 etcd)
k8s_minor=$(echo "$k8s" | cut -d. -f2)
sim=$(version github.com/llm-d/llm-d-inference-sim llm-d)
gaie=$(version sigs.k8s.io/gateway-api-inference-extension llm-d)
gaie_v1alpha2=$(version sigs.k8s.io/gateway-api-inference-extension gaie-v1alpha2)
# What each binary is: NAME VERSION PACKAGE [MODULE DIR, default .]
targets=(
  "kube-apiserver $k8s k8s.io/kubernetes/cmd/kube-apiserver"
  "kube-controller-manager $k8s k8s.io/kubernetes/cmd/kube-controller-manager"
  "kube-scheduler $k8s k8s.io/kubernetes/cmd/kube-scheduler"
  "etcd $etcd go.etcd.io/etcd/server/v3 etcd"
  "llm-d-inference-sim $sim github.com/llm-d/llm-d-inference-sim/cmd/llm-d-inference-sim llm-d"
  "epp $gaie sigs.k8s.io/gateway-api-inference-extension/cmd/epp llm-d"
  "epp-v1alpha2 $gaie_v1alpha2 sigs.k8s.io/gateway-api-inference-extension/cmd/epp gaie-v1alpha2"
)
k8s_ldflags="-X k8s.io/component-base/version.gitVersion=$k8s -X k8s.io/component-base/version.gitMajor=1
 -X k8s.io/component-base/version.gitMinor=$k8s_minor -X k8s.io/component-base/version.gitTreeState=clean
 -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s -X k8s.io/client-go/pkg/version.gitMajor=1
 -X k8s.io/client-go/pkg/version.gitMinor=$k8s_minor"

# The upstream CRDs (crds.txt) are copied out of the module cache into $cache/crds-<digest of crds.txt>/.
crd_dir="$cache/crds-$(grep -v '^#' "$here/crds.txt" | sha256sum | cut -c1-12)"

if [ "${1:-}" = "--print" ]; then
  echo "crds=$crd_dir"
  for t in "${targets[@]}"; do
    read -r name ver _ <<<"$t"
    echo "$name=$cache/$name-$ver"
  done
  exit 0
fi

mkdir -p "$cache"
start=$(date +%s)
built=()
for t in "${targets[@]}"; do
  read -r name ver pkg dir <<<"$t"
  out="$cache/$name-$ver"
  [ -x "$out" ] && continue
  flags=""
  case "$pkg" in
    k8s.io/*) flags=$k8s_ldflags ;;
    sigs.k8s.io/gateway-api-inference-extension/*)
      flags="-X sigs.k8s.io/gateway-api-inference-extension/version.BuildRef=$ver" ;;
  esac
  echo "building $name $ver ($pkg)" >&2
  (cd "$here/${dir:-.}" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -pgo=off -ldflags "$flags" -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
  built+=("$name")
done
if [ ! -d "$crd_dir" ]; then
  mkdir -p "$crd_dir.tmp"
  grep -v '^#' "$here/crds.txt" | while read -r module ver file; do
    [ -n "$module" ] || continue
    dir=$(cd "$here" && go mod download -json "$module@$ver" | awk -F'"' '$2 == "Dir" {print $4}')
    cp "$dir/$file" "$crd_dir.tmp/"
  done
  chmod -R u+w "$crd_dir.tmp"
  mv "$crd_dir.tmp" "$crd_dir"
fi
took=$(( $(date +%s) - start ))
if [ ${#built[@]} -gt 0 ]; then
  echo "built ${built[*]} in ${took}s" >&2
  echo "$took" > "$cache/last-build-seconds"
else
  echo "control-plane binaries up to date in $cache (${took}s)" >&2
fi
