-- Accounts, server-side sessions and the persistent job queue.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

-- id is HMAC(SECRET_KEY, cookie token): a leaked database holds no usable session.
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    user_id     INTEGER REFERENCES users(id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    flash       TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions(expires_at);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    -- JSON array of l4d2ctl arguments.
    args          TEXT NOT NULL,
    -- NULL for system jobs.
    user_id       INTEGER REFERENCES users(id) ON DELETE SET NULL,
    -- Identical queued system jobs share a key and are coalesced into one.
    coalesce_key  TEXT,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    error         TEXT,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    started_at    TEXT,
    finished_at   TEXT
);
CREATE INDEX jobs_state ON jobs(state, id);
CREATE INDEX jobs_user ON jobs(user_id, id);
CREATE UNIQUE INDEX jobs_coalesce_queued ON jobs(coalesce_key)
    WHERE state = 'queued' AND coalesce_key IS NOT NULL;

CREATE TABLE job_lines (
    job_id  INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    stream  TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr', 'system')),
    line    TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
