#!/bin/sh
# Build a local Debian bookworm base image (python3 3.11 + venv) from a debootstrap rootfs,
# for machines where no image registry is reachable (python:3.11-slim cannot be pulled).
#   deploy/base_image.sh [TAG]            default TAG: hybridrec-base:bookworm
# Needs root, debootstrap and a running dockerd; reaches only the Debian mirror
# (DEBIAN_MIRROR, default http://deb.debian.org/debian).
set -eu
TAG=${1:-hybridrec-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOTFS=$(mktemp -d /var/tmp/hybridrec-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$ROOTFS" "$MIRROR"
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/archives/*.deb
tar -C "$ROOTFS" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$TAG"
docker run --rm "$TAG" python3 -c 'import sys, venv; print("base image python", sys.version.split()[0])'
