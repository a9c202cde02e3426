-- Why an overlay's last workshop sync failed: in plain words for its page,
-- and in full for the details. Both NULL once a sync succeeds.
ALTER TABLE overlays ADD COLUMN sync_error TEXT;
ALTER TABLE overlays ADD COLUMN sync_error_detail TEXT;
