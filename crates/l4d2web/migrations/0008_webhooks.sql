-- Per-user webhook alerts: where to send them and which events, and the
-- bounded log of what was sent (the latest deliveries per webhook).

CREATE TABLE webhooks (
    id                  INTEGER PRIMARY KEY,
    user_id             INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    url                 TEXT NOT NULL,
    format              TEXT NOT NULL CHECK (format IN ('discord', 'json')),
    -- One flag per event kind (alerts::EventKind); a new kind adds a column.
    on_server_crashed   INTEGER NOT NULL DEFAULT 1 CHECK (on_server_crashed IN (0, 1)),
    on_crash_loop       INTEGER NOT NULL DEFAULT 1 CHECK (on_crash_loop IN (0, 1)),
    on_job_failed       INTEGER NOT NULL DEFAULT 1 CHECK (on_job_failed IN (0, 1)),
    on_server_recovered INTEGER NOT NULL DEFAULT 1 CHECK (on_server_recovered IN (0, 1)),
    created_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    UNIQUE (user_id, name)
);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    webhook_id      INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    -- The event's wire name ("server.crashed", "test", ...).
    event           TEXT NOT NULL,
    -- The exact body sent, built when the event was raised.
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- Unix milliseconds: when the sender tries next (pending only).
    next_attempt_at INTEGER NOT NULL,
    -- HTTP status of the last attempt; NULL when no response came.
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    finished_at     TEXT
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries(webhook_id, id);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries(next_attempt_at) WHERE state = 'pending';
