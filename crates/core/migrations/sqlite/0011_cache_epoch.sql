-- The cache epoch: one counter that every change to the tables behind a request's identity and
-- a data decision (tokens, accounts and roles, businesses and their fields, presence, holders,
-- grants, terminals, data keys) raises in the same transaction. A value cached in memory is used only while
-- the epoch read at the start of a request is the one it was read at (see cache.rs).
CREATE TABLE cache_epoch (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
INSERT INTO cache_epoch (id, n) VALUES (1, 0);
CREATE TRIGGER epoch_api_tokens_insert AFTER INSERT ON api_tokens BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_api_tokens_update AFTER UPDATE ON api_tokens BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_api_tokens_delete AFTER DELETE ON api_tokens BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_users_insert AFTER INSERT ON users BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_users_update AFTER UPDATE ON users BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_users_delete AFTER DELETE ON users BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_role_assignments_insert AFTER INSERT ON role_assignments BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_role_assignments_update AFTER UPDATE ON role_assignments BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_role_assignments_delete AFTER DELETE ON role_assignments BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_businesses_insert AFTER INSERT ON businesses BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_businesses_update AFTER UPDATE ON businesses BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_businesses_delete AFTER DELETE ON businesses BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_clients_insert AFTER INSERT ON clients BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_clients_update AFTER UPDATE ON clients BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_clients_delete AFTER DELETE ON clients BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_vault_fields_insert AFTER INSERT ON vault_fields BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_vault_fields_update AFTER UPDATE ON vault_fields BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_vault_fields_delete AFTER DELETE ON vault_fields BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_presence_insert AFTER INSERT ON presence BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_presence_update AFTER UPDATE ON presence BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_presence_delete AFTER DELETE ON presence BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_vault_holders_insert AFTER INSERT ON vault_holders BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_vault_holders_update AFTER UPDATE ON vault_holders BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_vault_holders_delete AFTER DELETE ON vault_holders BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_vault_grants_insert AFTER INSERT ON vault_grants BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_vault_grants_update AFTER UPDATE ON vault_grants BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_vault_grants_delete AFTER DELETE ON vault_grants BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_terminals_insert AFTER INSERT ON terminals BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_terminals_update AFTER UPDATE ON terminals BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_terminals_delete AFTER DELETE ON terminals BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_vault_keys_insert AFTER INSERT ON vault_keys BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_vault_keys_update AFTER UPDATE ON vault_keys BEGIN UPDATE cache_epoch SET n = n + 1; END;
CREATE TRIGGER epoch_vault_keys_delete AFTER DELETE ON vault_keys BEGIN UPDATE cache_epoch SET n = n + 1; END;
