#!/usr/bin/env bash
# build-tool.sh NAME DEST — builds one pinned test tool from the Go module proxy into DEST (atomically: a build that
# fails or is interrupted leaves no file behind, so the next run rebuilds it). Versions come from tools/versions.mk;
# the Makefile passes them as environment variables.
set -euo pipefail
name=$1 dest=$2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$(dirname "$dest")"
tmp=$(mktemp -d "${dest}.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
k8s_minor=$(echo "$K8S_VERSION" | cut -d. -f2)
k8s_stamp="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$k8s_minor -X k8s.io/component-base/version.gitTreeState=clean"
start=$(date +%s)
case "$name" in
  kube-apiserver|kube-controller-manager|kube-scheduler|kubectl)
    (cd "$here/kube" && go build -trimpath -ldflags "-s -w $k8s_stamp" -o "$tmp/$name" "k8s.io/kubernetes/cmd/$name") ;;
  etcd)
    (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/$name" ./cmd/etcd) ;;
  kwok)
    GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" ;;
  helm3)
    GOBIN="$tmp" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM3_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM3_VERSION"
    mv "$tmp/helm" "$tmp/$name" ;;
  helm4)
    GOBIN="$tmp" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM4_VERSION" "helm.sh/helm/v4/cmd/helm@$HELM4_VERSION"
    mv "$tmp/helm" "$tmp/$name" ;;
  kwok-stages)
    # kwok's own fast node and pod stages, read from the kwok module at the pinned version (never committed), plus
    # this repo's stage that fails Job pods which landed on a kwok node (kwok never runs a container).
    dir=$(cd "$tmp" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
    for f in "$dir/kustomize/stage/node/fast/node-initialize.yaml" "$dir/kustomize/stage/pod/fast/pod-ready.yaml" \
             "$dir/kustomize/stage/pod/fast/pod-delete.yaml" "$here/kwok/job-pod-not-executed.yaml"; do
      echo "---"; cat "$f"
    done > "$tmp/$name" ;;
  kustomize)
    # Only make bench uses it: the guard is compared with a no-op `kustomize build` of the same stream.
    GOBIN="$tmp" go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kustomize/api/provenance.version=$KUSTOMIZE_VERSION" "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" ;;
  staticcheck)
    GOBIN="$tmp" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" ;;
  *) echo "build-tool.sh: unknown tool $name" >&2; exit 2 ;;
esac
mv "$tmp/$name" "$dest"
echo "built $name in $(( $(date +%s) - start ))s -> $dest"
