#!/usr/bin/env bash
# Puts a static busybox into each example's build context. Nothing can be pulled here, so the
# example images are built FROM scratch around this one binary (Debian's busybox-static).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${BUSYBOX:-/bin/busybox}"

if [[ ! -x "$src" ]]; then
    echo "prepare.sh: $src not found; install it with: apt-get install -y busybox-static" >&2
    exit 1
fi
# A dynamically linked busybox (Debian's plain `busybox` package) would not start in an empty image.
if ldd "$src" >/dev/null 2>&1; then
    echo "prepare.sh: $src is not a static binary; install busybox-static" >&2
    exit 1
fi

for dir in "$here/app" "$here/app-broken"; do
    # Copy only when different, so Docker's build cache stays valid.
    if ! cmp -s "$src" "$dir/busybox"; then
        cp "$src" "$dir/busybox"
        chmod 0755 "$dir/busybox"
    fi
done
