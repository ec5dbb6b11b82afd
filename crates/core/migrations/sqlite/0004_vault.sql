-- Vault (issue 5): record schemas of businesses, wrapped data keys, encrypted field values,
-- standing holders and time-limited grants, and the user ↔ person link that presence needs.
CREATE TABLE vault_fields (
  business_id INTEGER NOT NULL REFERENCES businesses(id),
  name TEXT NOT NULL,
  label TEXT NOT NULL,
  sensitivity TEXT NOT NULL CHECK (sensitivity IN ('normal','personal','sensitive','card_number','my_number')),
  position INTEGER NOT NULL,
  PRIMARY KEY (business_id, name)
);
CREATE TABLE vault_keys (
  id INTEGER PRIMARY KEY,
  business_id INTEGER NOT NULL REFERENCES businesses(id),
  wrapped BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  destroyed_at INTEGER
);
CREATE TABLE vault_records (
  id INTEGER PRIMARY KEY,
  uid TEXT NOT NULL UNIQUE,
  business_id INTEGER NOT NULL REFERENCES businesses(id),
  key_id INTEGER NOT NULL REFERENCES vault_keys(id),
  normal TEXT NOT NULL,
  created_by INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE vault_values (
  record_id INTEGER NOT NULL REFERENCES vault_records(id),
  field TEXT NOT NULL,
  sealed BLOB NOT NULL,
  hint TEXT NOT NULL,
  PRIMARY KEY (record_id, field)
);
CREATE TABLE vault_holders (
  business_id INTEGER NOT NULL REFERENCES businesses(id),
  user_id INTEGER NOT NULL REFERENCES users(id),
  approved_by INTEGER NOT NULL,
  approved_at INTEGER NOT NULL,
  PRIMARY KEY (business_id, user_id)
);
CREATE TABLE vault_grants (
  id INTEGER PRIMARY KEY,
  business_id INTEGER NOT NULL REFERENCES businesses(id),
  user_id INTEGER NOT NULL REFERENCES users(id),
  ops TEXT NOT NULL,
  purpose TEXT NOT NULL,
  starts_at INTEGER NOT NULL,
  ends_at INTEGER NOT NULL,
  granted_by INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);
CREATE INDEX vault_grants_user ON vault_grants (user_id, business_id);
