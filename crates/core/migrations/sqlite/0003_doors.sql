-- Doors (issue 4): anti-passback settings of areas, doors, readers, cabinets, credentials,
-- access levels, CISO approvals, holidays, presence, alarms and visits.
ALTER TABLE zones ADD COLUMN apb_mode TEXT NOT NULL DEFAULT 'none';
ALTER TABLE zones ADD COLUMN apb_reset_minutes INTEGER NOT NULL DEFAULT 0;
CREATE TABLE doors (
  id INTEGER PRIMARY KEY,
  code TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  outside_zone_id INTEGER REFERENCES zones(id),
  inside_zone_id INTEGER NOT NULL REFERENCES zones(id),
  held_open_secs INTEGER NOT NULL DEFAULT 30,
  created_at INTEGER NOT NULL
);
CREATE TABLE readers (
  id INTEGER PRIMARY KEY,
  code TEXT NOT NULL UNIQUE,
  door_id INTEGER NOT NULL REFERENCES doors(id),
  direction TEXT NOT NULL CHECK (direction IN ('entry','exit')),
  mode TEXT NOT NULL CHECK (mode IN ('card','card_palm','card_pin')),
  osdp_address INTEGER NOT NULL DEFAULT 0,
  online INTEGER NOT NULL DEFAULT 0,
  last_seen_at INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);
CREATE TABLE cabinets (
  id INTEGER PRIMARY KEY,
  code TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  zone_id INTEGER NOT NULL REFERENCES zones(id),
  created_at INTEGER NOT NULL
);
CREATE TABLE credentials (
  id INTEGER PRIMARY KEY,
  person_id INTEGER NOT NULL REFERENCES people(id),
  kind TEXT NOT NULL CHECK (kind IN ('felica','mifare','h10301','palm','pin')),
  number TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active','returned','replaced','revoked','lost')),
  issued_at INTEGER NOT NULL,
  issued_by INTEGER,
  ended_at INTEGER,
  end_reason TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX credentials_active ON credentials (kind, number) WHERE status = 'active';
CREATE INDEX credentials_person ON credentials (person_id);
CREATE TABLE access_levels (
  id INTEGER PRIMARY KEY,
  code TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  position TEXT NOT NULL DEFAULT '',
  duty TEXT NOT NULL DEFAULT '',
  days TEXT NOT NULL DEFAULT '1234567',
  time_from TEXT NOT NULL DEFAULT '00:00',
  time_to TEXT NOT NULL DEFAULT '24:00',
  on_holidays INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL
);
CREATE TABLE access_level_zones (
  level_id INTEGER NOT NULL REFERENCES access_levels(id),
  zone_id INTEGER NOT NULL REFERENCES zones(id),
  PRIMARY KEY (level_id, zone_id)
);
CREATE TABLE person_levels (
  person_id INTEGER NOT NULL REFERENCES people(id),
  level_id INTEGER NOT NULL REFERENCES access_levels(id),
  PRIMARY KEY (person_id, level_id)
);
CREATE TABLE zone_approvals (
  id INTEGER PRIMARY KEY,
  person_id INTEGER NOT NULL REFERENCES people(id),
  zone_id INTEGER NOT NULL REFERENCES zones(id),
  approved_by INTEGER NOT NULL REFERENCES users(id),
  approved_at INTEGER NOT NULL,
  until_date TEXT,
  revoked_at INTEGER
);
CREATE TABLE holidays (
  day TEXT PRIMARY KEY,
  name TEXT NOT NULL
);
CREATE TABLE presence (
  person_id INTEGER PRIMARY KEY REFERENCES people(id),
  zone_id INTEGER NOT NULL,
  since INTEGER NOT NULL,
  door_id INTEGER
);
CREATE TABLE alarms (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  door_id INTEGER,
  reader_id INTEGER,
  person_id INTEGER,
  raised_at INTEGER NOT NULL,
  detail TEXT NOT NULL DEFAULT '',
  acked_at INTEGER,
  acked_by INTEGER,
  ack_comment TEXT
);
CREATE INDEX alarms_open ON alarms (acked_at, raised_at);
CREATE TABLE visits (
  id INTEGER PRIMARY KEY,
  visitor_id INTEGER NOT NULL REFERENCES people(id),
  host_id INTEGER NOT NULL REFERENCES people(id),
  company TEXT NOT NULL DEFAULT '',
  purpose TEXT NOT NULL,
  zones TEXT NOT NULL,
  expected_from INTEGER NOT NULL,
  expected_to INTEGER NOT NULL,
  credential_id INTEGER REFERENCES credentials(id),
  checked_in_at INTEGER,
  checked_out_at INTEGER,
  card_returned_at INTEGER,
  alarm_raised_at INTEGER,
  created_by INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
