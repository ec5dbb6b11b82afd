-- Vault, second part (issue 5): data keys live in a key store outside the database (only a
-- random key name here), double entry (DATA-10), clients' age recipients for handover exports
-- and the media handover register (LIFE-1, LIFE-2), grants that need a second approver,
-- deletion certificates (LIFE-7) and terminals registered to a zone and a business (DATA-7).
ALTER TABLE vault_keys ADD COLUMN kid TEXT;
-- 'data' keys seal values; the 'index' key of a business makes keyed blind indexes.
ALTER TABLE vault_keys ADD COLUMN purpose TEXT NOT NULL DEFAULT 'data';
ALTER TABLE vault_fields ADD COLUMN searchable INTEGER NOT NULL DEFAULT 0;
ALTER TABLE vault_values ADD COLUMN blind TEXT;
CREATE INDEX vault_values_blind ON vault_values (field, blind);
ALTER TABLE clients ADD COLUMN age_recipient TEXT;
ALTER TABLE businesses ADD COLUMN double_entry INTEGER NOT NULL DEFAULT 0;
ALTER TABLE vault_grants ADD COLUMN needs_second INTEGER NOT NULL DEFAULT 0;
ALTER TABLE vault_grants ADD COLUMN approved_by INTEGER;
CREATE TABLE vault_entries (
  id INTEGER PRIMARY KEY,
  business_id INTEGER NOT NULL REFERENCES businesses(id),
  form_no TEXT NOT NULL,
  key_id INTEGER NOT NULL REFERENCES vault_keys(id),
  first_by INTEGER NOT NULL,
  first_sealed BLOB NOT NULL,
  first_at INTEGER NOT NULL,
  second_by INTEGER,
  second_sealed BLOB,
  second_at INTEGER,
  state TEXT NOT NULL CHECK (state IN ('waiting','accepted','mismatch','resolved')),
  mismatched TEXT NOT NULL DEFAULT '',
  resolved_by INTEGER,
  record_uid TEXT,
  UNIQUE (business_id, form_no)
);
CREATE TABLE media_handovers (
  id INTEGER PRIMARY KEY,
  client_id INTEGER NOT NULL REFERENCES clients(id),
  business_id INTEGER REFERENCES businesses(id),
  direction TEXT NOT NULL CHECK (direction IN ('out','in')),
  medium TEXT NOT NULL,
  description TEXT NOT NULL,
  counterpart TEXT NOT NULL,
  sha256 TEXT,
  signed_by TEXT,
  recorded_by INTEGER NOT NULL,
  at INTEGER NOT NULL
);
CREATE TABLE deletion_certificates (
  id INTEGER PRIMARY KEY,
  client_id INTEGER NOT NULL REFERENCES clients(id),
  business TEXT NOT NULL,
  note TEXT NOT NULL,
  ledger_index INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE terminals (
  id INTEGER PRIMARY KEY,
  code TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  zone_id INTEGER NOT NULL REFERENCES zones(id),
  business_id INTEGER NOT NULL REFERENCES businesses(id),
  key_hash TEXT NOT NULL UNIQUE,
  created_by INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);
-- Copies, duplicates, downloads and prints of customer data (DATA-5, LIFE-4): each needs the
-- information manager's prior approval, has an expiry, and ends with a destruction record.
CREATE TABLE vault_copies (
  id INTEGER PRIMARY KEY,
  business_id INTEGER NOT NULL REFERENCES businesses(id),
  user_id INTEGER NOT NULL REFERENCES users(id),
  op TEXT NOT NULL CHECK (op IN ('copy','duplicate','download','print')),
  purpose TEXT NOT NULL,
  requested_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  approved_by INTEGER,
  approved_at INTEGER,
  used_at INTEGER,
  destroyed_at INTEGER,
  destroyed_by INTEGER,
  destruction TEXT
);
