#!/bin/bash
# name: Metamod Source and SourceMod
# description: Pinned Metamod:Source 1.11 and SourceMod 1.12 for Linux, SHA-256 verified (needs the internet).
#
# Installs into /overlay/left4dead2/addons/{metamod,sourcemod} and writes metamod.vdf.
# Needs the systemd backend (public internet). Fill in the SHA-256 values once (see README.md): the script refuses
# to install anything it cannot verify.
set -euo pipefail

MMS_URL="https://mms.alliedmods.net/mmsdrop/1.11/mmsource-1.11.0-git1155-linux.tar.gz"
MMS_SHA256=""   # sha256sum of the file at MMS_URL
SM_URL="https://sm.alliedmods.net/smdrop/1.12/sourcemod-1.12.0-git7210-linux.tar.gz"
SM_SHA256=""    # sha256sum of the file at SM_URL

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch_verified() { # url sha256 dest
  local url=$1 sum=$2 dest=$3
  if [ -z "$sum" ]; then
    echo "refusing to install $url: no SHA-256 pinned in this script (edit it and set the checksum)" >&2
    exit 2
  fi
  echo "downloading $url"
  curl --fail --location --silent --show-error --proto '=https' --max-time 600 -o "$dest" "$url"
  echo "$sum  $dest" | sha256sum --check --strict -
}

fetch_verified "$MMS_URL" "$MMS_SHA256" "$work/mms.tar.gz"
fetch_verified "$SM_URL" "$SM_SHA256" "$work/sm.tar.gz"

mkdir -p /overlay/left4dead2
# Both archives contain addons/ and (SourceMod) cfg/ at their top level.
tar -xzf "$work/mms.tar.gz" -C /overlay/left4dead2 --no-same-owner
tar -xzf "$work/sm.tar.gz" -C /overlay/left4dead2 --no-same-owner

# L4D2 loads Metamod through a VDF in addons/ (the x64 entry is not used by the 32-bit srcds).
cat > /overlay/left4dead2/addons/metamod.vdf <<'VDF'
"Plugin"
{
	"file"	"../left4dead2/addons/metamod/bin/server"
}
VDF

test -f /overlay/left4dead2/addons/metamod/bin/server.so
test -f /overlay/left4dead2/addons/sourcemod/bin/sourcemod_mm_i486.so
echo "installed Metamod:Source and SourceMod"
