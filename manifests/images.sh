#!/usr/bin/env bash
# Builds the OCI images that manifests/ferrolb.yaml names (ferrolb/controller:VERSION,
# ferrolb/speaker:VERSION) without a container daemon: umoci assembles each image from the
# release binary, exactly the shared libraries it loads (found with ldd) and Debian's CA
# bundle; skopeo writes the tarballs. Runs as root or not; needs Debian's umoci and skopeo
# (installed when missing and root).
#
#   bash manifests/images.sh [--bin-dir DIR] [--out DIR]
#
#   --bin-dir DIR  package the binaries in DIR instead of building release ones
#   --out DIR      where the images go (default target/images)
#
# Output, per component C in controller, speaker:
#   OUT/C.docker.tar  docker-archive: `docker load -i`, `podman load -i`, `ctr images import`
#   OUT/C.oci.tar     oci-archive:    `podman load -i`, `skopeo copy oci-archive:... docker://REGISTRY/...`
#   OUT/oci           an OCI image layout holding both (tags C-VERSION)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN_DIR=""
OUT="target/images"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) BIN_DIR="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "images.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

need=()
command -v umoci >/dev/null || need+=(umoci)
command -v skopeo >/dev/null || need+=(skopeo)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "images.sh: install ${need[*]} (apt-get install ${need[*]})" >&2; exit 1; fi
  echo "images.sh: installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
fi

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
REVISION=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
SOURCE="https://github.com/ferrolb/ferrolb"
CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)

if [ -z "$BIN_DIR" ]; then
  echo "images.sh: building release binaries"
  cargo build --release --locked -p ferrolb-controller -p ferrolb-speaker \
    --bin ferrolb-controller --bin ferrolb-speaker
  BIN_DIR=target/release
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LAYOUT="$OUT/oci"
rm -rf "$LAYOUT"
umoci init --layout "$LAYOUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The files of one image's root: the binary at /, the libraries it loads at their paths,
# a passwd/group naming the non-root user, and an empty /tmp.
stage_rootfs() {
  local binary=$1 rootfs=$2
  install -D -m 0755 "$binary" "$rootfs/$(basename "$binary")"
  ldd "$binary" | awk '/=>/ {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
    [ -n "$lib" ] && [ -e "$lib" ] || continue
    install -D -m 0644 "$(readlink -f "$lib")" "$rootfs$lib"
  done
  chmod 0755 "$rootfs"/lib*/ld-linux* 2>/dev/null || true
  # kube-rs's rustls loads the system's roots and refuses to start without any, even when
  # the kubeconfig brings its own CA: ship Debian's bundle.
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  mkdir -p "$rootfs/etc" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  printf 'root:x:0:0:root:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' > "$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
}

for component in controller speaker; do
  binary="$BIN_DIR/ferrolb-$component"
  [ -x "$binary" ] || { echo "images.sh: no $binary" >&2; exit 1; }
  tag="$component-$VERSION"
  echo "images.sh: ferrolb/$component:$VERSION from $binary"
  umoci new --image "$LAYOUT:$tag"
  umoci unpack --image "$LAYOUT:$tag" "$WORK/$component"
  stage_rootfs "$binary" "$WORK/$component/rootfs"
  umoci repack --image "$LAYOUT:$tag" "$WORK/$component"
  # The controller runs as nobody (as manifests/ferrolb.yaml asks); the speaker as root
  # with only NET_RAW, which the DaemonSet grants.
  user=0:0
  [ "$component" = controller ] && user=65534:65534
  umoci config --image "$LAYOUT:$tag" --os linux --architecture amd64 \
    --author "ferrolb" --created "$CREATED" \
    --config.entrypoint "/ferrolb-$component" --config.user "$user" \
    --config.exposedports 7472/tcp \
    --config.label "org.opencontainers.image.title=ferrolb-$component" \
    --config.label "org.opencontainers.image.version=$VERSION" \
    --config.label "org.opencontainers.image.revision=$REVISION" \
    --config.label "org.opencontainers.image.source=$SOURCE" \
    --config.label "org.opencontainers.image.licenses=Apache-2.0"
  umoci gc --layout "$LAYOUT"
  rm -f "$OUT/$component.docker.tar" "$OUT/$component.oci.tar"
  skopeo --insecure-policy copy -q "oci:$LAYOUT:$tag" "docker-archive:$OUT/$component.docker.tar:ferrolb/$component:$VERSION"
  skopeo --insecure-policy copy -q "oci:$LAYOUT:$tag" "oci-archive:$OUT/$component.oci.tar:ferrolb/$component:$VERSION"
  ls -l "$OUT/$component.docker.tar" "$OUT/$component.oci.tar"
done
echo "images.sh: done: $OUT (revision $REVISION)"
