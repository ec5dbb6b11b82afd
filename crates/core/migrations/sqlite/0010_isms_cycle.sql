-- The ISMS / Privacy Mark cycle (issue 6): statement of applicability, risk treatment plan,
-- objectives and periodic tasks (self-inspections, objective reviews, re-inventory) with
-- secretariat sign-off and reminder mail, people's records (pledges, training, drills),
-- vendors, audits and management reviews, disposal and media (chain of custody).
ALTER TABLE users ADD COLUMN email TEXT;
CREATE TABLE soa_entries (
  control TEXT PRIMARY KEY,
  applicable INTEGER NOT NULL,
  justification TEXT NOT NULL,
  updated_by INTEGER NOT NULL REFERENCES users(id),
  updated_at INTEGER NOT NULL
);
CREATE TABLE treatment_actions (
  id INTEGER PRIMARY KEY,
  risk_id INTEGER REFERENCES risk_assessments(id),
  control TEXT,
  action TEXT NOT NULL,
  owner TEXT NOT NULL,
  due TEXT NOT NULL,
  check_item TEXT,
  done_at INTEGER,
  done_by INTEGER REFERENCES users(id),
  created_by INTEGER REFERENCES users(id),
  created_at INTEGER NOT NULL
);
CREATE TABLE objectives (
  id INTEGER PRIMARY KEY,
  title TEXT NOT NULL,
  measure TEXT NOT NULL,
  target TEXT NOT NULL,
  owner TEXT NOT NULL,
  active INTEGER NOT NULL DEFAULT 1,
  created_by INTEGER NOT NULL REFERENCES users(id),
  created_at INTEGER NOT NULL
);
CREATE TABLE tasks (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('inspection','objective_review','inventory')),
  scope TEXT NOT NULL,
  period TEXT NOT NULL,
  due_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  answered_by INTEGER REFERENCES users(id),
  answered_at INTEGER,
  signed_by INTEGER REFERENCES users(id),
  signed_at INTEGER,
  sign_comment TEXT NOT NULL DEFAULT '',
  returned_comment TEXT NOT NULL DEFAULT '',
  reminded_at INTEGER,
  UNIQUE (kind, scope, period)
);
CREATE TABLE task_items (
  task_id INTEGER NOT NULL REFERENCES tasks(id),
  pos INTEGER NOT NULL,
  ref TEXT NOT NULL,
  question TEXT NOT NULL,
  result TEXT CHECK (result IN ('ok','ng','na')),
  comment TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (task_id, pos)
);
CREATE TABLE mail_outbox (
  id INTEGER PRIMARY KEY,
  task_id INTEGER REFERENCES tasks(id),
  recipient TEXT NOT NULL,
  subject TEXT NOT NULL,
  body TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  sent_at INTEGER,
  attempts INTEGER NOT NULL DEFAULT 0,
  error TEXT
);
CREATE TABLE pledge_texts (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('hire','yearly','leaving')),
  version INTEGER NOT NULL,
  body TEXT NOT NULL,
  created_by INTEGER NOT NULL REFERENCES users(id),
  created_at INTEGER NOT NULL,
  UNIQUE (kind, version)
);
CREATE TABLE pledges (
  id INTEGER PRIMARY KEY,
  person_id INTEGER NOT NULL REFERENCES people(id),
  text_id INTEGER NOT NULL REFERENCES pledge_texts(id),
  signed_by INTEGER NOT NULL REFERENCES users(id),
  signed_at INTEGER NOT NULL
);
CREATE TABLE courses (
  id INTEGER PRIMARY KEY,
  code TEXT NOT NULL UNIQUE,
  title TEXT NOT NULL,
  due_rule TEXT NOT NULL CHECK (due_rule IN ('hire','yearly','half_yearly','monthly')),
  role TEXT,
  pass_score INTEGER,
  created_at INTEGER NOT NULL
);
CREATE TABLE attendances (
  id INTEGER PRIMARY KEY,
  course_id INTEGER NOT NULL REFERENCES courses(id),
  person_id INTEGER NOT NULL REFERENCES people(id),
  attended_at INTEGER NOT NULL,
  score INTEGER,
  passed INTEGER NOT NULL,
  recorded_by INTEGER NOT NULL REFERENCES users(id)
);
CREATE TABLE drills (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('phishing','exercise','survey')),
  name TEXT NOT NULL,
  person_id INTEGER NOT NULL REFERENCES people(id),
  held_at INTEGER NOT NULL,
  result TEXT NOT NULL,
  recorded_by INTEGER NOT NULL REFERENCES users(id)
);
CREATE TABLE register_settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE vendors (
  id INTEGER PRIMARY KEY,
  code TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  cert_kind TEXT NOT NULL CHECK (cert_kind IN ('pmark','isms','equivalent')),
  cert_number TEXT NOT NULL,
  cert_expiry TEXT NOT NULL,
  nda INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE vendor_contracts (
  id INTEGER PRIMARY KEY,
  vendor_id INTEGER NOT NULL REFERENCES vendors(id),
  title TEXT NOT NULL,
  client_id INTEGER REFERENCES clients(id),
  client_approval TEXT NOT NULL DEFAULT '',
  my_number INTEGER NOT NULL,
  clauses TEXT NOT NULL,
  starts TEXT NOT NULL,
  ends TEXT NOT NULL,
  work_started_at INTEGER,
  created_by INTEGER NOT NULL REFERENCES users(id),
  created_at INTEGER NOT NULL
);
CREATE TABLE vendor_audits (
  id INTEGER PRIMARY KEY,
  vendor_id INTEGER NOT NULL REFERENCES vendors(id),
  contract_id INTEGER REFERENCES vendor_contracts(id),
  stage TEXT NOT NULL CHECK (stage IN ('yearly','before_contract','before_work','after_start')),
  audited_on TEXT NOT NULL,
  passed INTEGER NOT NULL,
  notes TEXT NOT NULL,
  recorded_by INTEGER NOT NULL REFERENCES users(id),
  created_at INTEGER NOT NULL
);
CREATE TABLE audits (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('internal','unit','onsite','personal_info','follow_up')),
  title TEXT NOT NULL,
  scope TEXT NOT NULL,
  planned_on TEXT NOT NULL,
  done_on TEXT,
  auditor TEXT NOT NULL,
  summary TEXT NOT NULL DEFAULT '',
  created_by INTEGER NOT NULL REFERENCES users(id),
  created_at INTEGER NOT NULL
);
CREATE TABLE findings (
  id INTEGER PRIMARY KEY,
  audit_id INTEGER NOT NULL REFERENCES audits(id),
  kind TEXT NOT NULL CHECK (kind IN ('nonconformity','observation')),
  text TEXT NOT NULL,
  action TEXT NOT NULL DEFAULT '',
  owner TEXT NOT NULL DEFAULT '',
  due TEXT,
  closed_at INTEGER,
  closed_by INTEGER REFERENCES users(id),
  created_at INTEGER NOT NULL
);
CREATE TABLE management_reviews (
  id INTEGER PRIMARY KEY,
  held_on TEXT NOT NULL,
  attendees TEXT NOT NULL,
  inputs TEXT NOT NULL,
  decisions TEXT NOT NULL,
  created_by INTEGER NOT NULL REFERENCES users(id),
  created_at INTEGER NOT NULL
);
CREATE TABLE media (
  serial TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  registered_at INTEGER NOT NULL,
  disposed_at INTEGER
);
CREATE TABLE disposals (
  id INTEGER PRIMARY KEY,
  what TEXT NOT NULL,
  medium_serial TEXT REFERENCES media(serial),
  method TEXT NOT NULL CHECK (method IN ('physical_destruction','shredding','dissolution','data_erasure')),
  contractor TEXT NOT NULL DEFAULT '',
  nda INTEGER NOT NULL DEFAULT 0,
  certificate TEXT NOT NULL DEFAULT '',
  witness TEXT NOT NULL DEFAULT '',
  disposed_on TEXT NOT NULL,
  approved_by INTEGER REFERENCES users(id),
  approved_at INTEGER,
  created_by INTEGER NOT NULL REFERENCES users(id),
  created_at INTEGER NOT NULL
);
INSERT INTO treatment_actions (control, action, owner, due, check_item, created_at) VALUES
  ('A.7.7', '退席時・終業時のクリアデスクとクリアスクリーンを徹底する', '各部門責任者', '2027-03-31', '机上・床に書類や媒体が放置されていない（クリアデスク・クリアフロア）', 0),
  ('A.8.1', '端末は離席時に画面をロックする（自動ロック5分）', '各部門責任者', '2027-03-31', '離席中の端末の画面がロックされている', 0),
  ('A.7.6', '高セキュリティエリアへの私物持込を禁止し、ロッカーに保管する', '各部門責任者', '2027-03-31', '高セキュリティエリアに私物（携帯電話・鞄等）が持ち込まれていない', 0),
  ('A.7.10', '記録媒体は施錠保管し、持出しは承認を得る', '各部門責任者', '2027-03-31', '記録媒体が施錠保管され、持出し記録と一致している', 0),
  ('A.5.10', '入館証を常時着用し、退館時に返却する', '各部門責任者', '2027-03-31', '全員が入館証を着用している', 0);
