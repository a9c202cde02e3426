#!/bin/bash
# name: Map pack sync
# description: Custom campaigns from a mirror index with MD5 sums; only changed archives are fetched (needs the internet and 7z).
#
# The mirror serves an index (one "<md5>  <archive>.7z" line per map archive, as md5sum prints it) next to the archives.
# Each archive is downloaded only when its MD5 changed since the last build (builds run in place; the verified
# archives' sums are kept in /overlay/.left4me-maps.md5), verified with md5sum, and extracted with 7z
# (apt install p7zip-full) into left4dead2/addons/. Maps no longer in the index are removed.
set -euo pipefail

MIRROR="https://example.org/l4d2-maps"   # set to your mirror (https only)
INDEX="$MIRROR/index.md5"

addons=/overlay/left4dead2/addons
state=/overlay/.left4me-maps.md5
mkdir -p "$addons"
touch "$state"
command -v 7z >/dev/null || { echo "7z is not installed on the host (apt install p7zip-full)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl --fail --location --silent --show-error --proto '=https' --max-time 120 -o "$work/index" "$INDEX"

new_state="$work/state"
: > "$new_state"
while read -r sum archive; do
  [ -n "$sum" ] || continue
  case "$archive" in
    */*|..*|"") echo "bad archive name in index: $archive" >&2; exit 3 ;;
  esac
  if [[ ! "$sum" =~ ^[0-9a-f]{32}$ ]]; then echo "bad md5 in index for $archive" >&2; exit 3; fi
  listing="$addons/.${archive}.files"
  if grep -qx "$sum  $archive" "$state" && [ -f "$listing" ]; then
    echo "up to date: $archive"
  else
    echo "fetching $archive"
    curl --fail --location --silent --show-error --proto '=https' --max-time 1800 -o "$work/$archive" "$MIRROR/$archive"
    (cd "$work" && echo "$sum  $archive" | md5sum --check --strict -)
    mkdir -p "$work/x"
    7z x -y -o"$work/x" "$work/$archive" >/dev/null
    # Only .vpk files land in addons/; remember them for removal later.
    find "$work/x" -type f -name '*.vpk' -printf '%f\n' > "$listing"
    find "$work/x" -type f -name '*.vpk' -exec install -m 0644 {} "$addons/" \;
    rm -rf "$work/x" "$work/$archive"
  fi
  echo "$sum  $archive" >> "$new_state"
done < "$work/index"

# Remove maps whose archive left the index.
for listing in "$addons"/.*.files; do
  [ -e "$listing" ] || continue
  archive=$(basename "$listing" .files); archive=${archive#.}
  if ! grep -q "  $archive\$" "$new_state"; then
    echo "removing $archive"
    while read -r vpk; do rm -f "$addons/$vpk"; done < "$listing"
    rm -f "$listing"
  fi
done
mv "$new_state" "$state"
echo "map pack in sync: $(grep -c . "$state") archive(s)"
