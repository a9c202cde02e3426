-- Overlays, blueprints and servers (SPEC §7).

-- A human title for the job list ("start server alpha"); NULL for plain
-- l4d2ctl jobs, whose argv says it all.
ALTER TABLE jobs ADD COLUMN title TEXT;

CREATE TABLE overlays (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('script', 'workshop')),
    -- NULL: a system overlay (seeded), usable by everyone, editable by admins.
    owner_id      INTEGER REFERENCES users(id) ON DELETE CASCADE,
    description   TEXT NOT NULL DEFAULT '',
    -- Script overlays: the bash script body.
    script        TEXT NOT NULL DEFAULT '',
    -- Workshop overlays: the item and collection ids as entered (JSON array of numbers).
    workshop_refs TEXT NOT NULL DEFAULT '[]',
    -- Last successful build (script) or sync (workshop).
    built_at      TEXT,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
-- Names are unique per owner; all system overlays share owner "0".
CREATE UNIQUE INDEX overlays_owner_name ON overlays(COALESCE(owner_id, 0), name);

-- Steam Workshop items known to the panel (metadata of the shared cache).
CREATE TABLE workshop_items (
    id           INTEGER PRIMARY KEY, -- Steam published file id
    title        TEXT NOT NULL,
    file_size    INTEGER NOT NULL,
    time_updated INTEGER NOT NULL,
    file_url     TEXT NOT NULL,
    fetched_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

-- The resolved items of a workshop overlay (collections expanded).
CREATE TABLE overlay_workshop_items (
    overlay_id INTEGER NOT NULL REFERENCES overlays(id) ON DELETE CASCADE,
    item_id    INTEGER NOT NULL REFERENCES workshop_items(id),
    PRIMARY KEY (overlay_id, item_id)
) WITHOUT ROWID;

CREATE TABLE blueprints (
    id         INTEGER PRIMARY KEY,
    owner_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    -- Launch arguments as typed (split into argv words, never run by a shell).
    args       TEXT NOT NULL DEFAULT '',
    -- server.cfg text.
    config     TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    UNIQUE (owner_id, name)
);

-- The ordered overlay stack of a blueprint; position 0 is the uppermost layer.
CREATE TABLE blueprint_overlays (
    blueprint_id INTEGER NOT NULL REFERENCES blueprints(id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    -- RESTRICT: an overlay a blueprint uses cannot be deleted.
    overlay_id   INTEGER NOT NULL REFERENCES overlays(id) ON DELETE RESTRICT,
    PRIMARY KEY (blueprint_id, position),
    UNIQUE (blueprint_id, overlay_id)
) WITHOUT ROWID;
CREATE INDEX blueprint_overlays_overlay ON blueprint_overlays(overlay_id);

CREATE TABLE servers (
    id            INTEGER PRIMARY KEY,
    -- The l4d2ctl instance name; instance names are global on the host.
    name          TEXT NOT NULL UNIQUE,
    -- RESTRICT: a user who still owns servers cannot be deleted.
    owner_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE RESTRICT,
    -- RESTRICT: a blueprint with linked servers cannot be deleted.
    blueprint_id  INTEGER NOT NULL REFERENCES blueprints(id) ON DELETE RESTRICT,
    port          INTEGER NOT NULL UNIQUE,
    -- Secrets: never rendered, never logged.
    rcon_password TEXT NOT NULL,
    -- sv_logsecret: attributes HL-log packets to this server.
    log_secret    TEXT NOT NULL UNIQUE,
    desired_state TEXT NOT NULL DEFAULT 'stopped' CHECK (desired_state IN ('running', 'stopped')),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX servers_owner ON servers(owner_id);
CREATE INDEX servers_blueprint ON servers(blueprint_id);
