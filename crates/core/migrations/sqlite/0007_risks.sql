-- Risk assessment (MGMT-4): a catalogue of threats and vulnerabilities the centre extends,
-- assessments per asset with their residual risk and acceptance, and the acceptance bands.
CREATE TABLE risk_catalogue (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('threat','vulnerability')),
  code TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL
);
INSERT INTO risk_catalogue (kind, code, name) VALUES
  ('threat', 'T-UNAUTH', '不正アクセス'),
  ('threat', 'T-LOSS', '紛失・盗難'),
  ('threat', 'T-MISSEND', '誤送付・誤送信'),
  ('threat', 'T-INSIDER', '内部不正（持ち出し）'),
  ('threat', 'T-MALWARE', 'マルウェア感染'),
  ('threat', 'T-DISASTER', '災害・障害'),
  ('vulnerability', 'V-ACCESS', 'アクセス権限の管理不足'),
  ('vulnerability', 'V-MEDIA', '媒体の持ち出し管理不足'),
  ('vulnerability', 'V-CHECK', '宛先確認の不足'),
  ('vulnerability', 'V-PATCH', '更新プログラムの未適用'),
  ('vulnerability', 'V-BACKUP', 'バックアップの不足');
CREATE TABLE risk_bands (
  id INTEGER PRIMARY KEY,
  medium_from INTEGER NOT NULL,
  high_from INTEGER NOT NULL
);
INSERT INTO risk_bands (id, medium_from, high_from) VALUES (1, 10, 20);
CREATE TABLE risk_assessments (
  id INTEGER PRIMARY KEY,
  asset_id INTEGER NOT NULL REFERENCES assets(id),
  threat_id INTEGER NOT NULL REFERENCES risk_catalogue(id),
  vulnerability_id INTEGER NOT NULL REFERENCES risk_catalogue(id),
  method TEXT NOT NULL CHECK (method IN ('seed','ipa')),
  threat INTEGER NOT NULL,
  vulnerability INTEGER NOT NULL,
  value INTEGER NOT NULL,
  controls TEXT NOT NULL,
  residual_threat INTEGER NOT NULL,
  residual_vulnerability INTEGER NOT NULL,
  residual_value INTEGER NOT NULL,
  accepted_by INTEGER REFERENCES users(id),
  accepted_at INTEGER,
  created_by INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
