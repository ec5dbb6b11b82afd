-- Sealed values in a WITHOUT ROWID table keyed by (record_id, field). In a rowid table a
-- reveal's value was two B-tree lookups, the primary-key index and then the table, and every
-- commit of the ledger's writer empties each reader's page cache, so under load each lookup
-- read its pages again. Now a reveal reads one tree, and a record's values are inserted into
-- one tree instead of two. Records' ids only grow, so the new rows still go at the end.
-- The values are copied as they are; nothing about them changes.
CREATE TABLE vault_values_next (
  record_id INTEGER NOT NULL REFERENCES vault_records(id),
  field TEXT NOT NULL,
  sealed BLOB NOT NULL,
  hint TEXT NOT NULL,
  blind TEXT,
  PRIMARY KEY (record_id, field)
) WITHOUT ROWID;
INSERT INTO vault_values_next (record_id, field, sealed, hint, blind)
  SELECT record_id, field, sealed, hint, blind FROM vault_values;
DROP TABLE vault_values;
ALTER TABLE vault_values_next RENAME TO vault_values;
CREATE INDEX vault_values_blind ON vault_values (field, blind);
