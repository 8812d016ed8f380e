-- Each sandbox's egress policy (internet access, allow and deny lists) as JSON.
ALTER TABLE sandboxes ADD COLUMN network TEXT NOT NULL DEFAULT '{"internet_access":true}';
