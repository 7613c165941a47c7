#!/usr/bin/env bash
# Build callscope's image with Podman from Debian's packages alone (no Docker Hub): a
# bookworm base made by mmdebstrap from the Debian mirror, then deploy/Dockerfile on it.
#
#   apt-get install podman buildah runc mmdebstrap   # once
#   deploy/image/build.sh                            # → localhost/callscope:dev
#
# Settings (environment):
#   CALLSCOPE_IMAGE       tag to build (localhost/callscope:dev)
#   CALLSCOPE_BASE_IMAGE  the Debian base's tag (localhost/callscope-base:bookworm); made
#                         once, if missing, with mmdebstrap from DEBIAN_MIRROR
#   PODMAN_FLAGS          podman's global flags ("--runtime runc --cgroup-manager cgroupfs":
#                         crun 1.8 refuses hybrid cgroup hierarchies, and without systemd
#                         the cgroupfs manager is the one that works)
#   PODMAN_ULIMITS        rlimits of build containers (podman's defaults are above the hard
#                         limits of some hosts, where raising them is not permitted)
#   BUILD_CA_BUNDLE       a CA bundle for pip inside the build, for a network whose TLS is
#                         intercepted (default: $SSL_CERT_FILE when set); not in the image
set -euo pipefail
cd "$(dirname "$0")/../.."

image=${CALLSCOPE_IMAGE:-localhost/callscope:dev}
base=${CALLSCOPE_BASE_IMAGE:-localhost/callscope-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
read -r -a podman <<< "podman ${PODMAN_FLAGS:---runtime runc --cgroup-manager cgroupfs}"
read -r -a ulimits <<< "${PODMAN_ULIMITS:---ulimit nofile=16384:16384 --ulimit nproc=16384:16384}"
ca_bundle=${BUILD_CA_BUNDLE:-${SSL_CERT_FILE:-}}

if ! "${podman[@]}" image exists "$base"; then
  echo "build: making $base from $mirror with mmdebstrap"
  mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm - "$mirror" | "${podman[@]}" import --change 'CMD ["python3"]' - "$base"
fi

mounts=()
if [ -n "$ca_bundle" ]; then
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  printf '[global]\ncert = /etc/ssl/certs/build-ca.pem\n' > "$scratch/pip.conf"
  mounts=(-v "$ca_bundle:/etc/ssl/certs/build-ca.pem:ro" -v "$scratch/pip.conf:/etc/pip.conf:ro")
fi

echo "build: $image on $base"
"${podman[@]}" build --network host "${ulimits[@]}" "${mounts[@]}" \
  --ignorefile deploy/Dockerfile.dockerignore --build-arg "BASE_IMAGE=$base" \
  -f deploy/Dockerfile -t "$image" .
echo "build: done: $image"
