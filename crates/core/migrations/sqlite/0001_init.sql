-- mamori schema v1 (SQLite). Times are Unix milliseconds (UTC); dates are 'YYYY-MM-DD'.
CREATE TABLE sites (
  id INTEGER PRIMARY KEY,
  code TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  address TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
);
CREATE TABLE departments (
  id INTEGER PRIMARY KEY,
  code TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  site_id INTEGER REFERENCES sites(id),
  created_at INTEGER NOT NULL
);
CREATE TABLE zones (
  id INTEGER PRIMARY KEY,
  code TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  level TEXT NOT NULL CHECK (level IN ('general','work','high','server')),
  parent_id INTEGER REFERENCES zones(id),
  site_id INTEGER REFERENCES sites(id),
  created_at INTEGER NOT NULL
);
CREATE TABLE people (
  id INTEGER PRIMARY KEY,
  employee_no TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  kana TEXT NOT NULL DEFAULT '',
  kind TEXT NOT NULL CHECK (kind IN ('employee','dispatched','part_time','visitor')),
  department_id INTEGER REFERENCES departments(id),
  position TEXT NOT NULL DEFAULT '',
  duties TEXT NOT NULL DEFAULT '',
  start_date TEXT,
  end_date TEXT,
  status TEXT NOT NULL CHECK (status IN ('active','suspended','left')),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE clients (
  id INTEGER PRIMARY KEY,
  code TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE businesses (
  id INTEGER PRIMARY KEY,
  code TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  client_id INTEGER NOT NULL REFERENCES clients(id),
  zone_id INTEGER REFERENCES zones(id),
  my_number INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);
CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  login TEXT NOT NULL UNIQUE,
  display_name TEXT NOT NULL,
  person_id INTEGER REFERENCES people(id),
  password_hash TEXT NOT NULL,
  totp_secret TEXT,
  failed_count INTEGER NOT NULL DEFAULT 0,
  locked_until INTEGER NOT NULL DEFAULT 0,
  disabled INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);
CREATE TABLE role_assignments (
  user_id INTEGER NOT NULL REFERENCES users(id),
  role TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (user_id, role)
);
CREATE TABLE sessions (
  token_hash TEXT PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id),
  kind TEXT NOT NULL,
  csrf TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  auth_at INTEGER NOT NULL,
  locked INTEGER NOT NULL DEFAULT 0,
  lang TEXT NOT NULL DEFAULT 'ja'
);
CREATE TABLE api_tokens (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id),
  name TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);
CREATE TABLE addr_throttle (
  addr TEXT PRIMARY KEY,
  failures INTEGER NOT NULL,
  window_start INTEGER NOT NULL
);
CREATE TABLE ledger_logs (
  id INTEGER PRIMARY KEY,
  origin TEXT NOT NULL UNIQUE,
  client_id INTEGER UNIQUE REFERENCES clients(id),
  size INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE ledger_entries (
  log_id INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  entry BLOB NOT NULL,
  leaf_hash BLOB NOT NULL,
  ts INTEGER NOT NULL,
  action TEXT NOT NULL,
  actor TEXT NOT NULL,
  object TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (log_id, idx)
) WITHOUT ROWID;
CREATE INDEX ledger_entries_ts ON ledger_entries (log_id, ts);
CREATE TABLE ledger_checkpoints (
  log_id INTEGER NOT NULL,
  size INTEGER NOT NULL,
  note TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (log_id, size)
);
CREATE TABLE ledger_reviews (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  range_from INTEGER NOT NULL,
  range_to INTEGER NOT NULL,
  reviewer_id INTEGER NOT NULL REFERENCES users(id),
  comment TEXT NOT NULL,
  events_seen INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
INSERT INTO ledger_logs (origin, size) VALUES ('centre', 0);
