-- Auto-resume: a paused sandbox with this flag starts again under its own id when an SDK call or preview
-- traffic reaches it. 0 = off (the default, and what every sandbox recorded before this had).
ALTER TABLE sandboxes ADD COLUMN auto_resume INTEGER NOT NULL DEFAULT 0;
