#!/usr/bin/env bash
# Stand-ins for the three images deploy/compose.yaml takes from Docker Hub (postgres, nginx,
# prometheus), made from Debian's packages alone for hosts that cannot reach Docker Hub: one
# bookworm image with postgresql-15, nginx and prometheus, each service started the way its
# official image starts it (deploy/compose.stand-ins.yaml says how).
#
#   deploy/image/stand-ins/build.sh      # → localhost/callscope-stand-ins:bookworm
#
# Settings (environment): STAND_INS_IMAGE (the tag), DEBIAN_MIRROR, PODMAN_FLAGS (as
# deploy/image/build.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

image=${STAND_INS_IMAGE:-localhost/callscope-stand-ins:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
read -r -a podman <<< "podman ${PODMAN_FLAGS:---runtime runc --cgroup-manager cgroupfs}"

echo "stand-ins: making $image from $mirror with mmdebstrap"
# No cluster of Debian's own (the entrypoint makes one in the volume); Prometheus' data
# directory owned by its user, as the official image's /prometheus is by nobody.
mmdebstrap --variant=minbase --include=postgresql-15,nginx,prometheus,ca-certificates \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --essential-hook='mkdir -p "$1/etc/postgresql-common/createcluster.d" && echo "create_main_cluster = false" > "$1/etc/postgresql-common/createcluster.d/no-main.conf"' \
  --customize-hook="copy-in $here/postgres-entrypoint.sh /usr/local/bin" \
  --customize-hook='chroot "$1" sh -c "mkdir -p /prometheus && chown prometheus:prometheus /prometheus"' \
  bookworm - "$mirror" | "${podman[@]}" import - "$image"
echo "stand-ins: done: $image"
