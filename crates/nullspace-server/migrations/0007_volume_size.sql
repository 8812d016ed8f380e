-- A volume's size limit in bytes (NULL: none; its data is a plain directory on the host).
ALTER TABLE volumes ADD COLUMN max_size_bytes INTEGER;
