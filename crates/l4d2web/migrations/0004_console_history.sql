-- The admin RCON console's history (SPEC §7): who ran what, and the output.
CREATE TABLE console_history (
    id         INTEGER PRIMARY KEY,
    server_id  INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    user_id    INTEGER REFERENCES users(id) ON DELETE SET NULL,
    command    TEXT NOT NULL,
    output     TEXT NOT NULL,
    ok         INTEGER NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX console_history_server ON console_history(server_id, id);
