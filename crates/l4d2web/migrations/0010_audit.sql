-- The audit log: who did what, from where, to what, with which result
-- (crate::audit). Append-only: the triggers below refuse every UPDATE and
-- every DELETE of an entry younger than the retention; only the purge
-- (audit::purge, from the housekeeping loop) deletes, and only entries
-- older than the retention it writes into audit_retention first.
--
-- No foreign keys on purpose: a deleted user or server must not change or
-- remove its entries (ON DELETE SET NULL would be an UPDATE). The names are
-- copied in, so an entry still reads right after its subject is gone.

CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY,
    -- RFC 3339 UTC with milliseconds: fixed width, so text order is time order.
    at              TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- The user who acted; NULL when nobody is known (a login with an
    -- unknown username).
    actor_id        INTEGER,
    actor_name      TEXT NOT NULL,
    -- The client address (the trusted-proxy rule of the login limits).
    source_ip       TEXT,
    -- Dotted: login.failed, server.start, rcon.command, ... (audit::Kind).
    kind            TEXT NOT NULL,
    target_type     TEXT NOT NULL DEFAULT '',
    target_id       INTEGER,
    target_name     TEXT NOT NULL DEFAULT '',
    -- The server the entry concerns, and its owner then (who sees it).
    server_id       INTEGER,
    server_owner_id INTEGER,
    result          TEXT NOT NULL CHECK (result IN ('ok', 'refused', 'failed')),
    detail          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX audit_log_actor ON audit_log(actor_id, id);
CREATE INDEX audit_log_server_owner ON audit_log(server_owner_id, id);
CREATE INDEX audit_log_server ON audit_log(server_id, id);

-- The retention the last purge ran with (one row; LEFT4ME_AUDIT_RETENTION_DAYS).
CREATE TABLE audit_retention (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    days INTEGER NOT NULL CHECK (days BETWEEN 1 AND 3650)
);
INSERT INTO audit_retention (id, days) VALUES (1, 365);

CREATE TRIGGER audit_retention_kept BEFORE DELETE ON audit_retention
BEGIN
    SELECT RAISE(ABORT, 'the audit retention row is kept');
END;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: entries cannot be changed');
END;

CREATE TRIGGER audit_log_no_early_delete BEFORE DELETE ON audit_log
WHEN OLD.at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now',
        '-' || COALESCE((SELECT days FROM audit_retention WHERE id = 1), 3650) || ' days')
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: only entries older than the retention are deleted');
END;
