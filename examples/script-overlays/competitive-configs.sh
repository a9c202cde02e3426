#!/bin/bash
# name: Competitive configs
# description: Versus/competitive server cfg pack (rates, lobby settings, bans of common exploits); no downloads.
#
# Writes cfg files into /overlay/left4dead2/cfg/. Works on every backend (no network needed).
# Load them from a blueprint's server.cfg with: exec left4me/competitive.cfg
set -euo pipefail

cfg=/overlay/left4dead2/cfg/left4me
mkdir -p "$cfg"

cat > "$cfg/rates.cfg" <<'CFG'
// Network rates for 60/100 tick servers (pair with the tickrate enabler and -tickrate 100).
sv_minrate 30000
sv_maxrate 100000
sv_minupdaterate 60
sv_maxupdaterate 100
sv_mincmdrate 60
sv_maxcmdrate 100
sv_client_min_interp_ratio -1
sv_client_max_interp_ratio 2
net_splitpacket_maxrate 50000
fps_max 0
CFG

cat > "$cfg/competitive.cfg" <<'CFG'
// Competitive versus defaults. Executed from server.cfg.
exec left4me/rates.cfg
sv_allow_lobby_connect_only 0
sv_gametypes "versus,teamversus,scavenge,teamscavenge"
mp_gamemode versus
z_difficulty normal
sv_alltalk 0
sv_voiceenable 1
sv_consistency 1
sv_pure 2
sv_pure_kick_clients 1
sv_cheats 0
sv_region 255
motd_enabled 0
sv_log_onefile 0
sv_logbans 1
sv_steamgroup_exclusive 0
// No idling abuse, no vote spam.
director_afk_timeout 45
sv_vote_issue_kick_allowed 1
sv_vote_creation_timer 120
CFG

cat > "$cfg/practice.cfg" <<'CFG'
// Practice mode: cheats for nade/spawn practice, everybody hears everybody.
exec left4me/competitive.cfg
sv_alltalk 1
sv_cheats 1
director_no_specials 0
CFG

echo "wrote: $(cd /overlay && find left4dead2/cfg/left4me -type f | sort | tr '\n' ' ')"
