-- What a job is about ("server:<id>", "overlay:<id>"), for the job lists
-- on that thing's page; NULL for jobs about the whole host. Set when the
-- job is queued, cleared when the thing is deleted (ids can be reused).
ALTER TABLE jobs ADD COLUMN subject TEXT;
UPDATE jobs SET subject = 'server:' || json_extract(args, '$.server_id')
    WHERE kind LIKE 'server-%' AND json_valid(args) AND json_extract(args, '$.server_id') IS NOT NULL
      AND json_extract(args, '$.server_id') IN (SELECT id FROM servers);
UPDATE jobs SET subject = 'overlay:' || json_extract(args, '$.overlay_id')
    WHERE kind IN ('overlay-build', 'workshop-sync') AND json_valid(args)
      AND json_extract(args, '$.overlay_id') IN (SELECT id FROM overlays);
CREATE INDEX jobs_subject ON jobs(subject, id) WHERE subject IS NOT NULL;
