-- Personal access tokens for the HTTP API. Only the SHA-256 of a token is
-- stored (tokens carry 256 random bits, so a fast hash is enough); the
-- token itself is shown once, when it is created. A token ends with its
-- user (ON DELETE CASCADE); a disabled user's tokens are refused.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    scope        TEXT NOT NULL CHECK (scope IN ('read', 'operate')),
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    expires_at   TEXT NOT NULL,
    revoked_at   TEXT,
    last_used_at TEXT,
    last_used_ip TEXT
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);
