-- Ledger entries in a rowid table. As a WITHOUT ROWID table keyed by (log_id, idx), each
-- ~500-byte entry went into the middle of the tree (the client logs interleave), so nearly
-- every group commit split a leaf and rewrote its siblings: about 20 WAL pages a commit.
-- Rows now append at the end of the table (SQLite's quick balance: one new page when the
-- last is full) and only the small key index takes the inserts between logs. The entries are
-- copied as they are, in the order they were written; nothing about them changes.
CREATE TABLE ledger_entries_next (
  log_id INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  entry BLOB NOT NULL,
  leaf_hash BLOB NOT NULL,
  ts INTEGER NOT NULL,
  action TEXT NOT NULL,
  actor TEXT NOT NULL,
  object TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (log_id, idx)
);
INSERT INTO ledger_entries_next (log_id, idx, entry, leaf_hash, ts, action, actor, object)
  SELECT log_id, idx, entry, leaf_hash, ts, action, actor, object FROM ledger_entries ORDER BY ts, log_id, idx;
DROP TABLE ledger_entries;
ALTER TABLE ledger_entries_next RENAME TO ledger_entries;
CREATE INDEX ledger_entries_ts ON ledger_entries (log_id, ts);
