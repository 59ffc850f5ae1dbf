#!/usr/bin/env bash
# Makes the tar-streaming benchmark corpus: the Go 1.19 standard library source tree from
# Debian's golang-1.19-src (about 8,000 files, 100 MB), copied onto a tmpfs so that the
# timings measure the code rather than the disk, plus one archive of it made by GNU tar
# and gzip -6 (the baseline's own format).
#
# usage: buildlet-proto/benches/prepare-tree.sh [DIR]   (default: /tmp/xbuild-bench)
# Prints the tree's and the archive's paths, the file count and the sizes. Safe to rerun:
# what exists is kept. Installing the package needs root (apt-get).
set -euo pipefail
dir=${1:-/tmp/xbuild-bench}
mkdir -p "$dir"
if ! mountpoint -q "$dir" && [ "$(id -u)" = 0 ]; then
  mount -t tmpfs -o size=3g,mode=0755 tmpfs "$dir" 2>/dev/null ||
    echo "note: no tmpfs on $dir; timings will include the disk" >&2
fi
# One pinned Go version, so that every machine measures the same tree.
src=/usr/share/go-1.19/src
if [ ! -d "$src" ]; then
  apt-get update -qq >/dev/null
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 golang-1.19-src >/dev/null
fi
tree=$dir/tree
archive=$dir/tree.tar.gz
[ -d "$tree" ] || { mkdir -p "$tree" && cp -a "$src/." "$tree/"; }
[ -f "$archive" ] || tar -C "$tree" -czf "$archive" .
echo "tree:    $tree ($(find "$tree" -type f | wc -l) files, $(du -sb "$tree" | cut -f1) bytes)"
echo "archive: $archive ($(stat -c %s "$archive") bytes)"
