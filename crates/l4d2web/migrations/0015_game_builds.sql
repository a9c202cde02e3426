-- How a blueprint's servers move onto a new game build: by hand, each
-- server once it has been empty for rollout_minutes, or one canary server
-- first and the rest after it ran rollout_minutes without trouble.
ALTER TABLE blueprints ADD COLUMN rollout_policy TEXT NOT NULL DEFAULT 'manual'
    CHECK (rollout_policy IN ('manual', 'when-empty', 'canary'));
ALTER TABLE blueprints ADD COLUMN rollout_minutes INTEGER NOT NULL DEFAULT 10
    CHECK (rollout_minutes BETWEEN 0 AND 1440);

-- A server kept on an older game build (a rollback); NULL: the newest.
ALTER TABLE servers ADD COLUMN pinned_build INTEGER
    CHECK (pinned_build IS NULL OR pinned_build > 0);

-- One rollout of a blueprint onto a build.
CREATE TABLE rollouts (
    id INTEGER PRIMARY KEY,
    blueprint_id INTEGER NOT NULL REFERENCES blueprints(id) ON DELETE CASCADE,
    build INTEGER NOT NULL CHECK (build > 0),
    -- canary: the canary moves or is watched; following: the rest move;
    -- done: every server is on the build; stopped: the canary failed.
    state TEXT NOT NULL CHECK (state IN ('canary', 'following', 'done', 'stopped')),
    canary_server_id INTEGER,
    canary_name TEXT,
    canary_job_id INTEGER,
    -- The canary's crash count when it moved, and when its move finished.
    canary_crashes INTEGER,
    canary_since TEXT,
    message TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    UNIQUE (blueprint_id, build)
);
