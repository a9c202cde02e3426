-- A delete requested but not finished yet: the panel finishes it after a
-- crash or restart instead of bringing the server back.
ALTER TABLE servers ADD COLUMN deleting INTEGER NOT NULL DEFAULT 0;
