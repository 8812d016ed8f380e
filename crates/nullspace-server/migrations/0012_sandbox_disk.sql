-- Each sandbox's disk limit in MiB: the size of the filesystem holding its writes (NULL: none, its writes
-- go to a plain directory on the host, as before this column existed).
ALTER TABLE sandboxes ADD COLUMN disk_mb INTEGER;
