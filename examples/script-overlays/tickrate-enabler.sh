#!/bin/bash
# name: Tickrate Enabler
# description: L4D2 Tickrate Enabler (accelerator74), pinned release, SHA-256 verified; use with -tickrate 60/100 (needs the internet).
#
# Installs the Metamod plugin into /overlay/left4dead2/addons/. Stack it above "Metamod Source and SourceMod" and add
# `-tickrate 100` to the blueprint's launch arguments (rates: see "Competitive configs").
set -euo pipefail

TE_URL="https://github.com/accelerator74/Tickrate-Enabler/releases/download/build/Tickrate-Enabler-l4d2-linux.zip"
TE_SHA256=""   # sha256sum of the file at TE_URL (the release is a rolling "build" tag: re-pin on purpose)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$TE_SHA256" ]; then
  echo "refusing to install $TE_URL: no SHA-256 pinned in this script (edit it and set the checksum)" >&2
  exit 2
fi
echo "downloading $TE_URL"
curl --fail --location --silent --show-error --proto '=https' --max-time 300 -o "$work/te.zip" "$TE_URL"
echo "$TE_SHA256  $work/te.zip" | sha256sum --check --strict -

mkdir -p "$work/x" /overlay/left4dead2/addons
# unzip may be missing on minimal hosts; 7z (p7zip-full) reads zip too.
if command -v unzip >/dev/null; then unzip -q "$work/te.zip" -d "$work/x"; else 7z x -y -o"$work/x" "$work/te.zip" >/dev/null; fi
so=$(find "$work/x" -name 'tickrate_enabler.so' | head -n1)
vdf=$(find "$work/x" -name 'tickrate_enabler.vdf' | head -n1)
if [ -z "$so" ] || [ -z "$vdf" ]; then
  echo "the archive does not contain tickrate_enabler.so and tickrate_enabler.vdf" >&2
  exit 3
fi
install -m 0644 "$so" "$vdf" /overlay/left4dead2/addons/
echo "installed tickrate_enabler into left4dead2/addons/"
