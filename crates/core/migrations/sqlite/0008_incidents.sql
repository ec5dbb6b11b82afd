-- Incidents (INC-1, INC-2): 24/365 intake, triage facts for the APPI clock, a timeline.
CREATE TABLE incidents (
  id INTEGER PRIMARY KEY,
  title TEXT NOT NULL,
  summary TEXT NOT NULL,
  reporter TEXT NOT NULL,
  channel TEXT NOT NULL CHECK (channel IN ('console','api')),
  known_at INTEGER NOT NULL,
  items TEXT NOT NULL DEFAULT '',
  cause TEXT NOT NULL DEFAULT '',
  people INTEGER NOT NULL DEFAULT 0,
  sensitive INTEGER NOT NULL DEFAULT 0,
  financial_damage INTEGER NOT NULL DEFAULT 0,
  improper_purpose INTEGER NOT NULL DEFAULT 0,
  my_number INTEGER NOT NULL DEFAULT 0,
  highly_encrypted INTEGER NOT NULL DEFAULT 0,
  processor INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL CHECK (state IN ('open','triaged','closed')),
  created_by INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE incident_timeline (
  id INTEGER PRIMARY KEY,
  incident_id INTEGER NOT NULL REFERENCES incidents(id),
  at INTEGER NOT NULL,
  by_user INTEGER NOT NULL,
  note TEXT NOT NULL
);
