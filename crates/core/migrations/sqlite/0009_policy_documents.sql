-- Policy documents (MGMT-1): the policy set, each document versioned, each version approved,
-- reviewed at least yearly.
CREATE TABLE policy_documents (
  id INTEGER PRIMARY KEY,
  code TEXT NOT NULL UNIQUE,
  title TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE policy_versions (
  id INTEGER PRIMARY KEY,
  document_id INTEGER NOT NULL REFERENCES policy_documents(id),
  version INTEGER NOT NULL,
  body TEXT NOT NULL,
  drafted_by INTEGER NOT NULL,
  drafted_at INTEGER NOT NULL,
  approved_by INTEGER,
  approved_at INTEGER,
  UNIQUE (document_id, version)
);
