-- Management registers (issue 6): the asset register (情報資産台帳, MGMT-3) per department.
CREATE TABLE assets (
  id INTEGER PRIMARY KEY,
  department_id INTEGER NOT NULL REFERENCES departments(id),
  name TEXT NOT NULL,
  owner TEXT NOT NULL,
  zone_id INTEGER REFERENCES zones(id),
  medium TEXT NOT NULL,
  c INTEGER NOT NULL CHECK (c BETWEEN 1 AND 3),
  i INTEGER NOT NULL CHECK (i BETWEEN 1 AND 3),
  a INTEGER NOT NULL CHECK (a BETWEEN 1 AND 3),
  personal INTEGER NOT NULL DEFAULT 0,
  my_number INTEGER NOT NULL DEFAULT 0,
  sensitive INTEGER NOT NULL DEFAULT 0,
  retention TEXT NOT NULL,
  disposal TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (department_id, name)
);
