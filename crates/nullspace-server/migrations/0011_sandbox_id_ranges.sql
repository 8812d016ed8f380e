-- Host uid/gid ranges of runc/crun sandboxes (issue 15, "a sandbox's root is not the host's root"): the
-- sandbox's ids 0..size-1 are host ids host_base..host_base+size-1. A row is written before the sandbox's
-- first process starts and deleted once the node has released everything of the sandbox (so a hibernated
-- sandbox holds none and gets one again at resume); the reconcile at start deletes rows of sandboxes that
-- are gone. host_base is unique: no two live sandboxes share a range. sandbox_id is not a foreign key:
-- template build steps run sandboxes that have no sandboxes row.
CREATE TABLE sandbox_id_ranges (
    sandbox_id TEXT PRIMARY KEY,
    host_base INTEGER NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    allocated_at TEXT NOT NULL
);
