-- Jobs with the same lock_key (e.g. "server:<name>") run one at a time, in
-- queue order: the web app serialises operations per server (SPEC §1).
ALTER TABLE jobs ADD COLUMN lock_key TEXT;
CREATE INDEX jobs_lock_running ON jobs(lock_key) WHERE state = 'running';
