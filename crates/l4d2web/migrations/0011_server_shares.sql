-- A server shared with another user, with a role: viewer (state, live
-- panel, console log), operator (+ start, stop, restart, RCON) or manager
-- (+ reset, blueprint switch, schedules, sharing). The owner has every
-- right and is never in this table.
CREATE TABLE server_shares (
    server_id  INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'manager')),
    granted_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (server_id, user_id)
);
CREATE INDEX server_shares_user ON server_shares(user_id);
