-- Two-factor login (TOTP, RFC 6238): one authenticator per user, its
-- single-use recovery codes, and the panel's own settings.

CREATE TABLE user_totp (
    user_id    INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    -- The raw shared secret (20 bytes). Shown only while enrolling.
    secret     BLOB NOT NULL,
    -- 0 while enrolling: a secret shown but not yet confirmed with a code.
    enabled    INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
    -- The time step (unix time / 30) of the last accepted code: codes of
    -- this step or an earlier one are refused (no replay).
    last_step  INTEGER,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    enabled_at TEXT
);

CREATE TABLE totp_recovery_codes (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- Hex SHA-256 of the normalised code (80 random bits); the code itself
    -- is shown once.
    code_hash  TEXT NOT NULL,
    used_at    TEXT,
    UNIQUE (user_id, code_hash)
);

-- Settings an administrator changes in the panel (key/value).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
