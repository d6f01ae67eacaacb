#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from their Go modules (through the Go module
# proxy) and caches them in $HOSTSTATE_BIN_CACHE/<k8s-version>/. Rebuilds only what is
# missing. Prints the cache directory on stdout when done.
#
# Why from source: this project's machines reach package registries only (no release
# downloads, no Docker), and the Go module proxy serves every Kubernetes release.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
# etcd paired with the release as Kubernetes' own go.mod pins its client (1.37 -> 3.7).
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
CACHE_ROOT="${HOSTSTATE_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hoststate/bin}"
OUT="$CACHE_ROOT/$K8S_VERSION"
mkdir -p "$OUT"
# One build at a time per cache: a second caller (parallel test runs) waits, then reuses it.
exec 9>"$OUT/.build.lock"
flock 9

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod GOWORK=off
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"

log() { echo "[build-control-plane] $*" >&2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build_kubernetes() {
  local mod="$work/k8s" staging_version="v0${K8S_VERSION#v1}"
  mkdir -p "$mod"
  log "fetching k8s.io/kubernetes $K8S_VERSION go.mod"
  # The module's own go.mod lists every staging module as `=> ./staging/...`; each is
  # published on the proxy at v0.<minor>.<patch>, so we replace them with those.
  curl -fsSL "${GOPROXY%%,*}/k8s.io/kubernetes/@v/$K8S_VERSION.mod" -o "$work/kubernetes.mod"
  {
    echo "module hoststate.local/controlplane"
    echo
    echo "go $(awk '/^go /{print $2; exit}' "$work/kubernetes.mod")"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    awk -v v="$staging_version" '/=> \.\/staging\//{print "\t" $1 " => " $1 " " v}' "$work/kubernetes.mod"
    echo ")"
  } > "$mod/go.mod"
  cat > "$mod/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  local pkg=k8s.io/component-base/version cgo=k8s.io/client-go/pkg/version
  local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local ld="-s -w"
  for p in "$pkg" "$cgo"; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  (cd "$mod" && go mod download k8s.io/kubernetes >&2)
  for cmd in "$@"; do
    log "building $cmd $K8S_VERSION (this takes many minutes on 2 cores)"
    (cd "$mod" && go build -trimpath -ldflags "$ld" -o "$OUT/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
    mv "$OUT/$cmd.tmp" "$OUT/$cmd"
  done
}

build_etcd() {
  local mod="$work/etcd"
  mkdir -p "$mod"
  log "building etcd $ETCD_VERSION"
  (cd "$mod" && go mod init hoststate.local/etcd >&2 2>&1 \
     && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2 2>&1 \
     && go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$OUT/etcd.tmp" "$OUT/etcd"
}

missing=()
for cmd in kube-apiserver kubectl; do [ -x "$OUT/$cmd" ] || missing+=("$cmd"); done
[ -x "$OUT/etcd" ] || build_etcd
[ ${#missing[@]} -eq 0 ] || build_kubernetes "${missing[@]}"
echo "$ETCD_VERSION" > "$OUT/etcd.version"
log "ready in $OUT"
echo "$OUT"
