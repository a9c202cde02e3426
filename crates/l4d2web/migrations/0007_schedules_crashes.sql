-- Crashes the panel has seen, on either backend: how many since the server
-- was created, when and how the last one ended, and whether the panel gave
-- up restarting it (local backend) or systemd hit its start limit.
ALTER TABLE servers ADD COLUMN crash_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE servers ADD COLUMN last_crash_at TEXT;
ALTER TABLE servers ADD COLUMN last_exit TEXT;
ALTER TABLE servers ADD COLUMN crash_loop INTEGER NOT NULL DEFAULT 0;

-- Recurring actions on one server or on every server of a blueprint.
CREATE TABLE schedules (
    id            INTEGER PRIMARY KEY,
    owner_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    server_id     INTEGER REFERENCES servers(id) ON DELETE CASCADE,
    blueprint_id  INTEGER REFERENCES blueprints(id) ON DELETE CASCADE,
    action        TEXT NOT NULL CHECK (action IN ('start', 'stop', 'restart', 'rcon', 'restart-when-empty')),
    -- The RCON command of an 'rcon' schedule.
    command       TEXT NOT NULL DEFAULT '',
    -- 'restart-when-empty': minutes without human players before the restart.
    empty_minutes INTEGER NOT NULL DEFAULT 0,
    cron          TEXT NOT NULL,
    time_zone     TEXT NOT NULL DEFAULT 'UTC',
    enabled       INTEGER NOT NULL DEFAULT 1,
    -- The last occurrence handled (run, or skipped as missed), RFC 3339 UTC.
    last_run_at   TEXT,
    last_result   TEXT,
    -- 'restart-when-empty': waiting for its servers to empty since then.
    armed_at      TEXT,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    CHECK ((server_id IS NULL) <> (blueprint_id IS NULL))
);
CREATE INDEX schedules_server ON schedules(server_id);
CREATE INDEX schedules_blueprint ON schedules(blueprint_id);

-- Facts the panel keeps about its host between runs (the boot it last saw).
CREATE TABLE panel_facts (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
