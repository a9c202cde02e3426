-- Steam id bans of a server, kept across restarts and resets and written
-- into the instance spec at every start (bans that ended are left out).
CREATE TABLE server_bans (
    server_id  INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    -- Canonical STEAM_1:Y:Z.
    steam_id   TEXT NOT NULL,
    -- Unix seconds when the ban ends; NULL = permanent.
    expires_at INTEGER,
    reason     TEXT NOT NULL DEFAULT '',
    banned_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (server_id, steam_id)
);

-- SourceMod admins of a server (admins_simple.ini, written at start).
CREATE TABLE server_admins (
    server_id  INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    steam_id   TEXT NOT NULL,
    flags      TEXT NOT NULL,
    immunity   INTEGER CHECK (immunity BETWEEN 0 AND 255),
    added_by   INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (server_id, steam_id)
);
