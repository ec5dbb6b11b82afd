//! The vault (issue 5, first part): clients' personal data in records whose fields are sealed
//! under the business's data key (DATA-4), masked by default and revealed one field at a time
//! (DATA-6), behind per-operation permissions held by at most three CISO-approved standing
//! holders or given by them as time-limited grants (DATA-1 to DATA-3), and only for a person
//! whose last door event puts them inside the business's secure zone (DATA-7). Every access,
//! allowed or denied, is an event of the client's log (AUDIT-1).

pub mod copies;
pub mod crypto;
pub mod entry;
pub mod handover;
pub mod mynumber;
pub mod terminal;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use mamori_ledger::Event;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use crate::db::Arg;

use crate::auth::Principal;
use crate::cache::EpochCache;
use crate::doors::DoorPolicy;
use crate::error::{CoreError, Result};
use crate::policy::Action;
use crate::types::{Code, Op, Sensitivity, Text};
use crate::Mamori;
use crypto::KeyProvider;

pub const VAULT_POLICY: &str = include_str!("../../policy/vault.cedar");
pub const MAX_STANDING_HOLDERS: i64 = 3;

/// The vault's keys and policy.
pub struct VaultState {
    pub kek: Arc<dyn KeyProvider>,
    pub policy: DoorPolicy,
    /// Unwrapped data keys by key name, so that a read does not touch the key store; a
    /// destroyed key leaves it at once.
    deks: std::sync::Mutex<std::collections::HashMap<String, zeroize::Zeroizing<[u8; 32]>>>,
    /// Businesses and their schemas by code, and decision facts by (account, business,
    /// terminal), while the cache epoch holds (`cache.rs`).
    businesses: EpochCache<String, (Business, Vec<FieldRow>)>,
    facts: EpochCache<(i64, i64, Option<String>), Facts>,
    /// The live key (id, name) of each (business, purpose).
    keys: EpochCache<(i64, &'static str), Option<(i64, String)>>,
}

impl VaultState {
    pub fn new(kek: Arc<dyn KeyProvider>) -> Result<Self> {
        let ops: Vec<&'static str> = Op::ALL.iter().map(|o| o.as_str()).collect();
        Ok(Self { kek, policy: DoorPolicy::with_actions(VAULT_POLICY, &ops)?, deks: Default::default(), businesses: EpochCache::new(), facts: EpochCache::new(), keys: EpochCache::new() })
    }

    /// The data key `kid` of `business` (key row `key_id`), from the cache or the key store.
    fn dek(&self, business: i64, key_id: i64, kid: &str) -> Result<zeroize::Zeroizing<[u8; 32]>> {
        if let Some(k) = self.deks.lock().map_err(|_| CoreError::Internal("key cache poisoned".into()))?.get(kid) {
            return Ok(k.clone());
        }
        let wrapped = self.kek.load(kid)?.ok_or(CoreError::NotFound("data key (destroyed)"))?;
        let k = self.kek.unwrap(&wrapped, &crypto::key_aad(business, key_id))?;
        self.deks.lock().map_err(|_| CoreError::Internal("key cache poisoned".into()))?.insert(kid.to_owned(), k.clone());
        Ok(k)
    }

    fn forget(&self, kid: &str) {
        if let Ok(mut c) = self.deks.lock() {
            c.remove(kid);
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewField {
    pub name: Code,
    pub label: Text,
    pub sensitivity: Sensitivity,
    /// Equality search on an encrypted field through a keyed blind index (a phone number, say).
    #[serde(default)]
    pub searchable: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldRow {
    pub name: String,
    pub label: String,
    pub sensitivity: Sensitivity,
    pub searchable: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    pub login: String,
    pub ops: Vec<Op>,
    pub purpose: Text,
    /// Length of the grant in hours (1 to 720); it starts now.
    pub hours: i64,
    /// Whether a second standing holder must approve before the grant takes effect (DATA-2).
    #[serde(default)]
    pub second_approver: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordRow {
    pub uid: String,
    /// Normal fields in the clear, every other field masked.
    pub fields: BTreeMap<String, String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Revealed {
    pub uid: String,
    pub field: String,
    pub value: String,
}

/// A data decision's stored facts ([`Mamori::decision_facts`]).
#[derive(Debug, Clone, Default)]
struct Facts {
    person: Option<i64>,
    zone: Option<i64>,
    holder: bool,
    terminal: bool,
    grants: Vec<LiveGrant>,
}

/// An unrevoked, approved grant: its window (ms) and its operations, comma-separated.
#[derive(Debug, Clone)]
struct LiveGrant {
    starts_at: i64,
    ends_at: i64,
    ops: String,
}

#[derive(Clone)]
struct Business {
    id: i64,
    code: String,
    client: String,
    zone: Option<i64>,
    my_number: bool,
    double_entry: bool,
}

/// A record's rows, sealed and ready to insert (in the caller's transaction or in a group
/// commit).
struct NewRecord {
    uid: String,
    business: i64,
    key_id: i64,
    normal: String,
    created_by: i64,
    created_at: i64,
    /// (field, sealed value, masked hint, blind index)
    values: Vec<(String, Vec<u8>, String, Option<String>)>,
}

/// The INSERT of a record's row, unless its data key was destroyed meanwhile (7 parameters).
macro_rules! insert_record {
    () => {
        "INSERT INTO vault_records (uid, business_id, key_id, normal, created_by, created_at) \
         SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM vault_keys WHERE id = $7 AND destroyed_at IS NULL)"
    };
}

impl NewRecord {
    /// Seals every field above normal under `dek` (bound to the business, record and field).
    #[allow(clippy::too_many_arguments)]
    fn seal(
        p: &Principal,
        b: &Business,
        fields: &[FieldRow],
        key_id: i64,
        dek: &[u8; 32],
        index_key: Option<&[u8; 32]>,
        values: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        let uid = crate::auth::random_token("r_");
        let normal: BTreeMap<&str, &str> = fields
            .iter()
            .filter(|f| f.sensitivity == Sensitivity::Normal)
            .filter_map(|f| values.get(&f.name).map(|v| (f.name.as_str(), v.as_str())))
            .collect();
        let mut sealed = Vec::new();
        for f in fields.iter().filter(|f| f.sensitivity != Sensitivity::Normal) {
            let Some(v) = values.get(&f.name) else { continue };
            let blind = match (index_key, f.searchable) {
                (Some(k), true) => Some(crypto::blind_index(k, &f.name, v)?),
                _ => None,
            };
            sealed.push((f.name.clone(), crypto::seal(dek, v.as_bytes(), &crypto::field_aad(b.id, &uid, &f.name))?, mask(f.sensitivity, v), blind));
        }
        Ok(Self {
            normal: serde_json::to_string(&normal).map_err(|e| CoreError::Internal(e.to_string()))?,
            uid,
            business: b.id,
            key_id,
            created_by: p.user_id,
            created_at: now.timestamp_millis(),
            values: sealed,
        })
    }

    /// Its `data.input` event: names the record, never a value.
    fn event(&self, p: &Principal, b: &Business, rule: &str) -> Event {
        let at = DateTime::from_timestamp_millis(self.created_at).unwrap_or_default();
        Event::new(at, p.actor(), "data.input").object("record", &self.uid).client(&b.client).rule(rule).detail("business", &b.code).addr(p.addr.clone())
    }

    const INSERT_RECORD: &'static str = concat!(insert_record!(), " RETURNING id");

    /// The INSERT of this record's sealed values (5 parameters each).
    fn values_sql(&self) -> String {
        let mut sql = String::from("INSERT INTO vault_values (record_id, field, sealed, hint, blind) VALUES ");
        for i in 0..self.values.len() {
            let k = i * 5;
            sql.push_str(&format!("{}(${},${},${},${},${})", if i > 0 { "," } else { "" }, k + 1, k + 2, k + 3, k + 4, k + 5));
        }
        sql
    }

    /// Inserts the rows, unless the data key was destroyed meanwhile (then nothing).
    async fn insert(&self, conn: &mut AnyConnection) -> Result<()> {
        let row: Option<(i64,)> = sqlx::query_as(Self::INSERT_RECORD)
            .bind(&self.uid)
            .bind(self.business)
            .bind(self.key_id)
            .bind(&self.normal)
            .bind(self.created_by)
            .bind(self.created_at)
            .bind(self.key_id)
            .fetch_optional(&mut *conn)
            .await?;
        let (rid,) = row.ok_or(CoreError::NotFound("data key (destroyed)"))?;
        if self.values.is_empty() {
            return Ok(());
        }
        let sql = self.values_sql();
        let mut q = sqlx::query(&sql);
        for (field, sealed, hint, blind) in &self.values {
            q = q.bind(rid).bind(field.as_str()).bind(sealed.as_slice()).bind(hint.as_str()).bind(blind.as_deref());
        }
        q.execute(&mut *conn).await?;
        Ok(())
    }

    /// [`Self::insert`] on the SQLite ledger writer's own connection.
    fn insert_sqlite(&self, conn: &rusqlite::Connection) -> Result<()> {
        // Without RETURNING, which SQLite runs through an ephemeral table whose page cache is
        // made and freed again in every statement (see `sqlite::reserve`).
        let inserted = conn
            .prepare_cached(insert_record!())?
            .execute(rusqlite::params![self.uid, self.business, self.key_id, self.normal, self.created_by, self.created_at, self.key_id])?;
        if inserted == 0 {
            return Err(CoreError::NotFound("data key (destroyed)"));
        }
        // `id` is the table's INTEGER PRIMARY KEY: the rowid that this insert made.
        let rid = conn.last_insert_rowid();
        if self.values.is_empty() {
            return Ok(());
        }
        let mut args: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(self.values.len() * 5);
        for (field, sealed, hint, blind) in &self.values {
            args.extend([&rid as &dyn rusqlite::ToSql, field, sealed, hint, blind]);
        }
        conn.prepare_cached(&self.values_sql())?.execute(args.as_slice())?;
        Ok(())
    }
}

impl crate::ledger::BatchStep for NewRecord {
    fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'c>> {
        Box::pin(self.insert(conn))
    }

    fn apply_sqlite(&self, conn: &rusqlite::Connection) -> Result<()> {
        self.insert_sqlite(conn)
    }
}

/// Masks a value for display: card numbers keep their last four digits, My Numbers nothing,
/// other personal fields their first character.
pub fn mask(s: Sensitivity, v: &str) -> String {
    match s {
        Sensitivity::Normal => v.to_owned(),
        Sensitivity::CardNumber => {
            let digits: String = v.chars().filter(char::is_ascii_digit).collect();
            let last = digits.get(digits.len().saturating_sub(4)..).unwrap_or("");
            format!("**** **** **** {last}")
        }
        Sensitivity::MyNumber => "************".into(),
        Sensitivity::Sensitive => "＊＊＊＊".into(),
        Sensitivity::Personal => {
            let mut c = v.chars();
            match c.next() {
                Some(f) => format!("{f}{}", "＊".repeat(c.count().clamp(1, 8))),
                None => String::new(),
            }
        }
    }
}

impl Mamori {
    async fn business(&self, conn: &mut AnyConnection, code: &str) -> Result<Business> {
        let row: Option<(i64, String, String, Option<i64>, i64, i64)> = sqlx::query_as(
            "SELECT b.id, b.code, c.code, b.zone_id, b.my_number, b.double_entry FROM businesses b JOIN clients c ON c.id = b.client_id WHERE b.code = $1",
        )
        .bind(code)
        .fetch_optional(&mut *conn)
        .await?;
        let (id, code, client, zone, my_number, double_entry) = row.ok_or(CoreError::NotFound("business"))?;
        Ok(Business { id, code, client, zone, my_number: my_number != 0, double_entry: double_entry != 0 })
    }

    /// A business and its record schema. Outside a transaction and with the request's cache
    /// epoch, from memory while the epoch holds (never from inside a transaction: what it reads
    /// may yet be rolled back).
    async fn business_fields(&self, conn: Option<&mut AnyConnection>, epoch: Option<i64>, code: &str) -> Result<(Business, Vec<FieldRow>)> {
        let epoch = crate::cache::outside(epoch, &conn);
        self.vault
            .businesses
            .through(code, epoch, || async move {
                type Row = (i64, i64, String, String, Option<i64>, i64, i64, Option<String>, Option<String>, Option<String>, Option<i64>);
                let rows: Vec<Row> = self
                    .db
                    .rows(
                        conn,
                        "SELECT (SELECT n FROM cache_epoch WHERE id = 1), b.id, b.code, c.code, b.zone_id, b.my_number, b.double_entry, f.name, f.label, f.sensitivity, f.searchable \
                         FROM businesses b JOIN clients c ON c.id = b.client_id LEFT JOIN vault_fields f ON f.business_id = b.id \
                         WHERE b.code = $1 ORDER BY f.position",
                        &[Arg::Text(code)],
                    )
                    .await?;
                let first = rows.first().ok_or(CoreError::NotFound("business"))?;
                let read_at = first.0;
                let b = Business { id: first.1, code: first.2.clone(), client: first.3.clone(), zone: first.4, my_number: first.5 != 0, double_entry: first.6 != 0 };
                let mut fields = Vec::with_capacity(rows.len());
                for r in rows {
                    if let (Some(name), Some(label), Some(s), Some(q)) = (r.7, r.8, r.9, r.10) {
                        fields.push(FieldRow { name, label, sensitivity: s.parse()?, searchable: q != 0 });
                    }
                }
                Ok((Some(read_at), (b, fields)))
            })
            .await
    }

    async fn fields_of(&self, conn: &mut AnyConnection, business: i64) -> Result<Vec<FieldRow>> {
        let rows: Vec<(String, String, String, i64)> =
            sqlx::query_as("SELECT name, label, sensitivity, searchable FROM vault_fields WHERE business_id = $1 ORDER BY position")
                .bind(business)
                .fetch_all(&mut *conn)
                .await?;
        rows.into_iter().map(|(name, label, s, q)| Ok(FieldRow { name, label, sensitivity: s.parse()?, searchable: q != 0 })).collect()
    }

    /// Links an account to the person it belongs to (presence comes from that person's door events).
    pub async fn link_user_person(&self, p: &Principal, user_id: i64, employee_no: &str) -> Result<()> {
        self.require(p, Action::UsersManage).await?;
        let mut tx = self.db.begin().await?;
        let person = crate::doors::person_id(&mut tx, employee_no).await?;
        let n = sqlx::query("UPDATE users SET person_id = $1 WHERE id = $2").bind(person).bind(user_id).execute(&mut *tx).await?.rows_affected();
        if n == 0 {
            return Err(CoreError::NotFound("user"));
        }
        let ev = Event::new(self.clock.now(), p.actor(), "user.link_person").object("user", user_id).detail("person", person);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds fields to a business's record schema.
    pub async fn define_fields(&self, p: &Principal, business: &str, fields: Vec<NewField>) -> Result<()> {
        self.require(p, Action::VaultSchema).await?;
        if fields.is_empty() {
            return Err(CoreError::invalid("fields", "name at least one field"));
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let b = self.business(&mut tx, business).await?;
        let (mut pos,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM vault_fields WHERE business_id = $1").bind(b.id).fetch_one(&mut *tx).await?;
        for f in &fields {
            if f.sensitivity == Sensitivity::MyNumber && !b.my_number {
                return Err(CoreError::invalid("sensitivity", "a My Number field needs a business marked for My Number (MYNUM-1)"));
            }
            sqlx::query("INSERT INTO vault_fields (business_id, name, label, sensitivity, position, searchable) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(b.id)
                .bind(f.name.as_str())
                .bind(f.label.as_str())
                .bind(f.sensitivity.as_str())
                .bind(pos)
                .bind(i64::from(f.searchable))
                .execute(&mut *tx)
                .await
                .map_err(|e| CoreError::from_db_unique(e, "field"))?;
            pos += 1;
        }
        let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        let ev = Event::new(now, p.actor(), "vault.schema").object("business", &b.code).client(&b.client).detail("fields", names.join(","));
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_fields(&self, p: &Principal, business: &str) -> Result<Vec<FieldRow>> {
        self.require(p, Action::VaultUse).await?;
        Ok(self.business_fields(None, p.epoch, business).await?.1)
    }

    /// CISO approval of a standing holder (DATA-1): at most three per business.
    pub async fn approve_holder(&self, p: &Principal, business: &str, login: &str) -> Result<()> {
        self.require(p, Action::VaultHolders).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let b = self.business(&mut tx, business).await?;
        let user = user_id(&mut tx, login).await?;
        if user == p.user_id {
            return Err(CoreError::invalid("login", "nobody approves themselves as a standing holder"));
        }
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM vault_holders WHERE business_id = $1").bind(b.id).fetch_one(&mut *tx).await?;
        if n >= MAX_STANDING_HOLDERS {
            return Err(CoreError::Conflict(format!("a business has at most {MAX_STANDING_HOLDERS} standing holders")));
        }
        sqlx::query("INSERT INTO vault_holders (business_id, user_id, approved_by, approved_at) VALUES ($1, $2, $3, $4)")
            .bind(b.id)
            .bind(user)
            .bind(p.user_id)
            .bind(now.timestamp_millis())
            .execute(&mut *tx)
            .await
            .map_err(|e| CoreError::from_db_unique(e, "standing holder"))?;
        let ev = Event::new(now, p.actor(), "vault.holder_approve").object("user", user).client(&b.client).detail("business", &b.code);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn is_holder(&self, conn: &mut AnyConnection, business: i64, user: i64) -> Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT user_id FROM vault_holders WHERE business_id = $1 AND user_id = $2")
            .bind(business)
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row.is_some())
    }

    /// A standing holder grants a colleague operations for a time (DATA-2); never to themselves.
    pub async fn grant(&self, p: &Principal, business: &str, g: NewGrant) -> Result<i64> {
        self.require(p, Action::VaultUse).await?;
        // Issuing a grant is a sensitive operation: a fresh password check (SECURITY-BASELINE).
        self.require_recent_auth(p)?;
        if g.ops.is_empty() {
            return Err(CoreError::invalid("ops", "name at least one operation"));
        }
        if !(1..=720).contains(&g.hours) {
            return Err(CoreError::invalid("hours", "1 to 720 hours"));
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let b = self.business(&mut tx, business).await?;
        if !self.is_holder(&mut tx, b.id, p.user_id).await? {
            return Err(CoreError::Forbidden { rule: Some("only-standing-holders-grant".into()) });
        }
        let user = user_id(&mut tx, &g.login).await?;
        if user == p.user_id {
            return Err(CoreError::invalid("login", "nobody grants access to themselves"));
        }
        // HUMAN-1/2: when the centre turns it on, no data access for someone who owes a
        // pledge or required training.
        self.check_grantee_flags(user).await?;
        let ops: Vec<&str> = g.ops.iter().map(|o| o.as_str()).collect();
        let ends = now + Duration::hours(g.hours);
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO vault_grants (business_id, user_id, ops, purpose, starts_at, ends_at, granted_by, created_at, needs_second) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(b.id)
        .bind(user)
        .bind(ops.join(","))
        .bind(g.purpose.as_str())
        .bind(now.timestamp_millis())
        .bind(ends.timestamp_millis())
        .bind(p.user_id)
        .bind(now.timestamp_millis())
        .bind(i64::from(g.second_approver))
        .fetch_one(&mut *tx)
        .await?;
        let ev = Event::new(now, p.actor(), "vault.grant")
            .object("grant", id)
            .client(&b.client)
            .purpose(g.purpose.as_str())
            .detail("business", &b.code)
            .detail("user", user)
            .detail("ops", ops.join(","))
            .detail("until", ends.to_rfc3339())
            .detail("second_approver", g.second_approver);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A second standing holder approves a grant that needs one: neither its issuer nor its
    /// grantee (nobody approves their own request).
    pub async fn approve_grant(&self, p: &Principal, id: i64) -> Result<()> {
        self.require(p, Action::VaultUse).await?;
        self.require_recent_auth(p)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let row: Option<(i64, i64, i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT business_id, user_id, granted_by, needs_second, approved_by FROM vault_grants WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let (bid, grantee, granter, needs, approved) = row.ok_or(CoreError::NotFound("grant"))?;
        if needs == 0 || approved.is_some() {
            return Err(CoreError::Conflict("this grant needs no (further) approval".into()));
        }
        if !self.is_holder(&mut tx, bid, p.user_id).await? {
            return Err(CoreError::Forbidden { rule: Some("only-standing-holders-grant".into()) });
        }
        if p.user_id == granter || p.user_id == grantee {
            return Err(CoreError::Forbidden { rule: Some("second-approver-is-another-holder".into()) });
        }
        sqlx::query("UPDATE vault_grants SET approved_by = $1 WHERE id = $2").bind(p.user_id).bind(id).execute(&mut *tx).await?;
        let (client,): (String,) =
            sqlx::query_as("SELECT c.code FROM businesses b JOIN clients c ON c.id = b.client_id WHERE b.id = $1").bind(bid).fetch_one(&mut *tx).await?;
        let ev = Event::new(now, p.actor(), "vault.grant_approve").object("grant", id).client(&client);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revokes a grant at once (by a standing holder of its business).
    pub async fn revoke_grant(&self, p: &Principal, id: i64) -> Result<()> {
        self.require(p, Action::VaultUse).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let row: Option<(i64,)> = sqlx::query_as("SELECT business_id FROM vault_grants WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let (bid,) = row.ok_or(CoreError::NotFound("grant"))?;
        if !self.is_holder(&mut tx, bid, p.user_id).await? {
            return Err(CoreError::Forbidden { rule: Some("only-standing-holders-grant".into()) });
        }
        sqlx::query("UPDATE vault_grants SET revoked_at = $1 WHERE id = $2").bind(now.timestamp_millis()).bind(id).execute(&mut *tx).await?;
        let (client,): (String,) =
            sqlx::query_as("SELECT c.code FROM businesses b JOIN clients c ON c.id = b.client_id WHERE b.id = $1").bind(bid).fetch_one(&mut *tx).await?;
        let ev = Event::new(now, p.actor(), "vault.grant_revoke").object("grant", id).client(&client);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Decides one operation on a business's data for `p` now: (allowed, rule), on the stored
    /// facts ([`Self::decision_facts`]) and the request's time.
    async fn decide_op(&self, conn: Option<&mut AnyConnection>, p: &Principal, b: &Business, op: Op, my_number_field: bool, now: DateTime<Utc>) -> Result<(bool, String)> {
        let facts = self.decision_facts(conn, p, b).await?;
        let now_ms = now.timestamp_millis();
        let granted = facts.grants.iter().any(|g| g.starts_at <= now_ms && now_ms < g.ends_at && g.ops.split(',').any(|o| o == op.as_str()));
        let present = b.zone.is_some() && facts.zone == b.zone && facts.person.is_some();
        let facts = [
            ("linked", facts.person.is_some()),
            ("present", present),
            ("terminal", facts.terminal),
            ("holder", facts.holder),
            ("granted", granted),
            ("my_number_field", my_number_field),
            ("my_number_business", b.my_number),
        ];
        self.vault.policy.evaluate(op.as_str(), p.user_id, b.id, &facts)
    }

    /// What a data decision rests on, as stored: the account's person and where that person
    /// is, whether the account is a standing holder of the business, whether the request's
    /// terminal is registered to the business and its room, and the account's live grants
    /// (judged at the request's time by the caller, so they can be cached). From memory while
    /// the request's cache epoch holds, outside transactions.
    async fn decision_facts(&self, conn: Option<&mut AnyConnection>, p: &Principal, b: &Business) -> Result<Facts> {
        let epoch = crate::cache::outside(p.epoch, &conn);
        let key = (p.user_id, b.id, p.terminal.clone());
        self.vault
            .facts
            .through(&key, epoch, || async move {
                type Row = (i64, Option<i64>, Option<i64>, i64, i64, Option<i64>, Option<i64>, Option<String>);
                let rows: Vec<Row> = self
                    .db
                    .rows(
                        conn,
                        "SELECT (SELECT n FROM cache_epoch WHERE id = 1), u.person_id, \
                           (SELECT pr.zone_id FROM presence pr WHERE pr.person_id = u.person_id), \
                           (SELECT COUNT(*) FROM vault_holders h WHERE h.business_id = $1 AND h.user_id = u.id), \
                           (SELECT COUNT(*) FROM terminals t WHERE t.key_hash = $2 AND t.business_id = $3 AND t.zone_id = $4 AND t.revoked_at IS NULL), \
                           g.starts_at, g.ends_at, g.ops \
                         FROM users u LEFT JOIN vault_grants g ON g.business_id = $5 AND g.user_id = u.id AND g.revoked_at IS NULL \
                           AND (g.needs_second = 0 OR g.approved_by IS NOT NULL) \
                         WHERE u.id = $6",
                        &[Arg::Int(b.id), Arg::OptText(p.terminal.as_deref()), Arg::Int(b.id), Arg::OptInt(b.zone), Arg::Int(b.id), Arg::Int(p.user_id)],
                    )
                    .await?;
                let Some(first) = rows.first() else { return Ok((None, Facts::default())) };
                let read_at = first.0;
                let mut facts = Facts { person: first.1, zone: first.2, holder: first.3 > 0, terminal: first.4 > 0, grants: Vec::new() };
                for r in rows {
                    if let (Some(starts_at), Some(ends_at), Some(ops)) = (r.5, r.6, r.7) {
                        facts.grants.push(LiveGrant { starts_at, ends_at, ops });
                    }
                }
                Ok((Some(read_at), facts))
            })
            .await
    }

    /// Records a denied attempt in the client's log and returns the error.
    async fn denied(&self, p: &Principal, b: &Business, op: Op, rule: String, what: Option<(&str, &str)>) -> CoreError {
        let mut ev = Event::new(self.clock.now(), p.actor(), &format!("data.{}", op.as_str()))
            .client(&b.client)
            .detail("business", &b.code)
            .denied(Some(&rule))
            .addr(p.addr.clone());
        if let Some((uid, field)) = what {
            ev = ev.object("record", uid).detail("field", field);
        }
        if let Err(e) = self.ledger.append(ev).await {
            return e;
        }
        CoreError::Forbidden { rule: Some(rule) }
    }

    /// The current data key of a business, created (and kept in the key store, never in the
    /// database) on first use.
    async fn data_key(&self, conn: &mut AnyConnection, b: &Business) -> Result<(i64, zeroize::Zeroizing<[u8; 32]>)> {
        match self.live_key(Some(&mut *conn), b, "data").await? {
            Some(k) => Ok(k),
            None => self.new_data_key(conn, b).await,
        }
    }

    async fn new_data_key(&self, conn: &mut AnyConnection, b: &Business) -> Result<(i64, zeroize::Zeroizing<[u8; 32]>)> {
        self.new_key(conn, b, "data").await
    }

    /// The newest live key of a purpose (`data`: the one new records are sealed under; `index`:
    /// the business's only blind-index key), if the business has one.
    async fn live_key(&self, conn: Option<&mut AnyConnection>, b: &Business, purpose: &'static str) -> Result<Option<(i64, zeroize::Zeroizing<[u8; 32]>)>> {
        self.live_key_at(conn, None, b, purpose).await
    }

    /// [`Self::live_key`], outside a transaction from memory while `epoch` holds. A key cached
    /// here may be destroyed before the record is written: the insert re-checks it.
    async fn live_key_at(&self, conn: Option<&mut AnyConnection>, epoch: Option<i64>, b: &Business, purpose: &'static str) -> Result<Option<(i64, zeroize::Zeroizing<[u8; 32]>)>> {
        let epoch = crate::cache::outside(epoch, &conn);
        let key = self
            .vault
            .keys
            .through(&(b.id, purpose), epoch, || async move {
                // One row whether or not the business has such a key (NULLs then).
                let row: Option<(i64, Option<i64>, Option<String>)> = self
                    .db
                    .row(
                        conn,
                        "SELECT e.n, k.id, k.kid FROM cache_epoch e LEFT JOIN vault_keys k \
                           ON k.business_id = $1 AND k.purpose = $2 AND k.destroyed_at IS NULL \
                         WHERE e.id = 1 ORDER BY k.id DESC LIMIT 1",
                        &[Arg::Int(b.id), Arg::Text(purpose)],
                    )
                    .await?;
                Ok(match row {
                    Some((read_at, id, kid)) => (Some(read_at), id.zip(kid)),
                    None => (None, None),
                })
            })
            .await?;
        match key {
            Some((id, kid)) => Ok(Some((id, self.vault.dek(b.id, id, &kid)?))),
            None => Ok(None),
        }
    }

    /// The business's blind-index key, created on first use (destroyed with its data keys).
    async fn index_key(&self, conn: &mut AnyConnection, b: &Business) -> Result<zeroize::Zeroizing<[u8; 32]>> {
        match self.live_key(Some(&mut *conn), b, "index").await? {
            Some((_, k)) => Ok(k),
            None => Ok(self.new_key(conn, b, "index").await?.1),
        }
    }

    async fn new_key(&self, conn: &mut AnyConnection, b: &Business, purpose: &str) -> Result<(i64, zeroize::Zeroizing<[u8; 32]>)> {
        let dek = crypto::new_dek();
        let kid = crypto::new_kid();
        let (id,): (i64,) = sqlx::query_as("INSERT INTO vault_keys (business_id, wrapped, kid, created_at, purpose) VALUES ($1, $2, $3, $4, $5) RETURNING id")
            .bind(b.id)
            .bind(Vec::<u8>::new())
            .bind(&kid)
            .bind(self.clock.now().timestamp_millis())
            .bind(purpose)
            .fetch_one(&mut *conn)
            .await?;
        // Stored before the transaction commits: a rollback leaves an unused key file under a
        // random name, never a row without its key.
        self.vault.kek.store(&kid, &self.vault.kek.wrap(&dek, &crypto::key_aad(b.id, id))?)?;
        Ok((id, dek))
    }

    /// The data key of key row `key_id`, unless it was destroyed.
    async fn key_by_id(&self, conn: &mut AnyConnection, b: &Business, key_id: i64) -> Result<zeroize::Zeroizing<[u8; 32]>> {
        let row: Option<(Option<String>,)> = sqlx::query_as("SELECT kid FROM vault_keys WHERE id = $1 AND business_id = $2 AND destroyed_at IS NULL")
            .bind(key_id)
            .bind(b.id)
            .fetch_optional(&mut *conn)
            .await?;
        match row {
            Some((Some(kid),)) => self.vault.dek(b.id, key_id, &kid),
            _ => Err(CoreError::NotFound("data key (destroyed)")),
        }
    }

    /// Every record of a business in the clear (at most `limit`, oldest first): two queries, each
    /// data key unwrapped once. Only for operations already decided (exports, approved copies).
    async fn open_all_records(&self, conn: &mut AnyConnection, b: &Business, limit: i64) -> Result<Vec<(String, BTreeMap<String, String>)>> {
        let recs: Vec<(i64, String, i64, String)> =
            sqlx::query_as("SELECT id, uid, key_id, normal FROM vault_records WHERE business_id = $1 ORDER BY id LIMIT $2")
                .bind(b.id)
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?;
        let sealed: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
            "SELECT v.record_id, v.field, v.sealed FROM vault_values v JOIN vault_records r ON r.id = v.record_id WHERE r.business_id = $1",
        )
        .bind(b.id)
        .fetch_all(&mut *conn)
        .await?;
        let mut by_record: BTreeMap<i64, Vec<(String, Vec<u8>)>> = BTreeMap::new();
        for (rid, f, v) in sealed {
            by_record.entry(rid).or_default().push((f, v));
        }
        let mut keys: BTreeMap<i64, zeroize::Zeroizing<[u8; 32]>> = BTreeMap::new();
        let mut out = Vec::with_capacity(recs.len());
        for (rid, uid, key_id, normal) in recs {
            let mut values: BTreeMap<String, String> = serde_json::from_str(&normal).unwrap_or_default();
            for (f, v) in by_record.remove(&rid).unwrap_or_default() {
                let dek = match keys.get(&key_id) {
                    Some(k) => k.clone(),
                    None => {
                        let k = self.key_by_id(conn, b, key_id).await?;
                        keys.insert(key_id, k.clone());
                        k
                    }
                };
                let plain = zeroize::Zeroizing::new(crypto::open(&dek, &v, &crypto::field_aad(b.id, &uid, &f))?);
                values.insert(f, String::from_utf8_lossy(&plain).into_owned());
            }
            out.push((uid, values));
        }
        Ok(out)
    }

    /// Keys in a record (op `input`): every field above normal is sealed; the event names the
    /// record, never a value.
    pub async fn create_record(&self, p: &Principal, business: &str, values: BTreeMap<String, String>) -> Result<String> {
        self.require(p, Action::VaultUse).await?;
        let now = self.clock.now();
        // Decided on hot reads, then written in a group commit with its event: the record is
        // committed within one batch of the decision, and only under a data key still live then.
        let (b, fields) = self.business_fields(None, p.epoch, business).await?;
        if b.double_entry {
            return Err(CoreError::invalid("business", "this business requires double entry: key the form with its form number (DATA-10)"));
        }
        if fields.is_empty() {
            return Err(CoreError::invalid("business", "this business has no record schema yet"));
        }
        check_values(&fields, &values)?;
        let has_mn = fields.iter().any(|f| f.sensitivity == Sensitivity::MyNumber && values.contains_key(&f.name));
        let (ok, rule) = self.decide_op(None, p, &b, Op::Input, has_mn, now).await?;
        if !ok {
            return Err(self.denied(p, &b, Op::Input, rule, None).await);
        }
        let searchable = fields.iter().any(|f| f.searchable);
        let data = self.live_key_at(None, p.epoch, &b, "data").await?;
        let index = if searchable { self.live_key_at(None, p.epoch, &b, "index").await?.map(|k| k.1) } else { None };
        let (data, index) = match (data, index) {
            (Some(d), i) if i.is_some() || !searchable => (d, i),
            _ => {
                // The first record of a business: its keys are made in a transaction of their
                // own (which finds those another request made meanwhile).
                let mut tx = self.db.begin().await?;
                let d = self.data_key(&mut tx, &b).await?;
                let i = if searchable { Some(self.index_key(&mut tx, &b).await?) } else { None };
                tx.commit().await?;
                (d, i)
            }
        };
        let rec = NewRecord::seal(p, &b, &fields, data.0, &data.1, index.as_deref(), &values, now)?;
        let ev = rec.event(p, &b, &rule);
        let uid = rec.uid.clone();
        self.ledger.append_with(ev, Box::new(rec)).await?;
        Ok(uid)
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_record(
        &self,
        conn: &mut AnyConnection,
        p: &Principal,
        b: &Business,
        fields: &[FieldRow],
        key_id: i64,
        dek: &[u8; 32],
        values: &BTreeMap<String, String>,
        rule: &str,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let index_key = if fields.iter().any(|f| f.searchable) { Some(self.index_key(conn, b).await?) } else { None };
        let rec = NewRecord::seal(p, b, fields, key_id, dek, index_key.as_deref(), values, now)?;
        rec.insert(conn).await?;
        self.ledger.append_tx(conn, &rec.event(p, b, rule)).await?;
        Ok(rec.uid)
    }

    /// Batch import of records from CSV (UTF-8 or Shift_JIS; the header names the fields by
    /// name or by label). A bad row rejects the whole file with its line number; nothing of it
    /// is half-imported. Each record is its own `data.input` event.
    pub async fn import_records(&self, p: &Principal, business: &str, bytes: &[u8]) -> Result<usize> {
        self.require(p, Action::VaultUse).await?;
        let text = crate::directory::decode_csv(bytes)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (b, fields) = self.business_fields(Some(&mut *tx), None, business).await?;
        let mut rdr = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
        let headers = rdr.headers().map_err(|e| CoreError::Import { line: 1, message: e.to_string() })?.clone();
        let mut cols = Vec::new();
        for h in headers.iter() {
            let h = h.trim();
            let f = fields
                .iter()
                .find(|f| f.name == h || f.label == h)
                .ok_or_else(|| CoreError::Import { line: 1, message: format!("unknown column {h:?}") })?;
            cols.push(f.name.clone());
        }
        let mut rows = Vec::new();
        for (i, rec) in rdr.records().enumerate() {
            let line = i as u64 + 2;
            let rec = rec.map_err(|e| CoreError::Import { line, message: e.to_string() })?;
            let values: BTreeMap<String, String> =
                cols.iter().cloned().zip(rec.iter().map(|v| v.trim().to_owned())).filter(|(_, v)| !v.is_empty()).collect();
            check_values(&fields, &values).map_err(|e| CoreError::Import { line, message: e.to_string() })?;
            rows.push(values);
        }
        if rows.is_empty() {
            return Err(CoreError::Import { line: 2, message: "the file has no records".into() });
        }
        let has_mn = fields.iter().any(|f| f.sensitivity == Sensitivity::MyNumber && cols.contains(&f.name));
        let (ok, rule) = self.decide_op(Some(&mut *tx), p, &b, Op::Input, has_mn, now).await?;
        if !ok {
            drop(tx);
            return Err(self.denied(p, &b, Op::Input, rule, None).await);
        }
        let (key_id, dek) = self.data_key(&mut tx, &b).await?;
        for values in &rows {
            self.insert_record(&mut tx, p, &b, &fields, key_id, &dek, values, &rule, now).await?;
        }
        let ev = Event::new(now, p.actor(), "data.import").client(&b.client).rule(&rule).detail("business", &b.code).detail("records", rows.len());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Records of a business, masked (op `view`); the listing is itself a recorded access.
    pub async fn list_records(&self, p: &Principal, business: &str) -> Result<Vec<RecordRow>> {
        self.records_where(p, business, None).await
    }

    /// Records whose searchable field equals a value (op `view`), found by its keyed blind
    /// index without decrypting anything; masked, and recorded without the value searched for.
    pub async fn search_records(&self, p: &Principal, business: &str, field: &str, value: &str) -> Result<Vec<RecordRow>> {
        if crypto::normalise_for_search(value).is_empty() {
            return Err(CoreError::invalid("eq", "a value to search for"));
        }
        self.records_where(p, business, Some((field, value))).await
    }

    async fn records_where(&self, p: &Principal, business: &str, search: Option<(&str, &str)>) -> Result<Vec<RecordRow>> {
        self.require(p, Action::VaultUse).await?;
        let now = self.clock.now();
        let mut tx = self.db.pool.acquire().await?;
        let b = self.business(&mut tx, business).await?;
        let (ok, rule) = self.decide_op(Some(&mut *tx), p, &b, Op::View, false, now).await?;
        if !ok {
            drop(tx);
            return Err(self.denied(p, &b, Op::View, rule, None).await);
        }
        let recs: Vec<(i64, String, String, i64)> = match search {
            None => {
                sqlx::query_as("SELECT id, uid, normal, created_at FROM vault_records WHERE business_id = $1 ORDER BY id DESC LIMIT 500")
                    .bind(b.id)
                    .fetch_all(&mut *tx)
                    .await?
            }
            Some((field, value)) => {
                let fields = self.fields_of(&mut tx, b.id).await?;
                if !fields.iter().any(|f| f.name == field && f.searchable) {
                    return Err(CoreError::invalid("field", "not a searchable field of this business"));
                }
                // No index key yet means no record has a searchable value yet.
                match self.live_key(Some(&mut *tx), &b, "index").await? {
                    Some((_, k)) => {
                        sqlx::query_as(
                            "SELECT r.id, r.uid, r.normal, r.created_at FROM vault_records r JOIN vault_values v ON v.record_id = r.id \
                             WHERE r.business_id = $1 AND v.field = $2 AND v.blind = $3 ORDER BY r.id DESC LIMIT 500",
                        )
                        .bind(b.id)
                        .bind(field)
                        .bind(crypto::blind_index(&k, field, value)?)
                        .fetch_all(&mut *tx)
                        .await?
                    }
                    None => Vec::new(),
                }
            }
        };
        // The masks of the records listed only (at most 500), not of the whole business.
        let hints: Vec<(i64, String, String)> = if recs.is_empty() {
            Vec::new()
        } else {
            let marks: Vec<String> = (1..=recs.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT record_id, field, hint FROM vault_values WHERE record_id IN ({})", marks.join(","));
            let mut q = sqlx::query_as(&sql);
            for (id, ..) in &recs {
                q = q.bind(*id);
            }
            q.fetch_all(&mut *tx).await?
        };
        let mut by_record: BTreeMap<i64, Vec<(String, String)>> = BTreeMap::new();
        for (r, f, h) in hints {
            by_record.entry(r).or_default().push((f, h));
        }
        let mut out = Vec::with_capacity(recs.len());
        for (id, uid, normal, created_at) in recs {
            let mut fields: BTreeMap<String, String> = serde_json::from_str(&normal).unwrap_or_default();
            fields.extend(by_record.remove(&id).unwrap_or_default());
            out.push(RecordRow { uid, fields, created_at });
        }
        let mut ev = Event::new(now, p.actor(), if search.is_some() { "data.search" } else { "data.list" })
            .client(&b.client)
            .rule(&rule)
            .detail("business", &b.code)
            .detail("records", out.len())
            .addr(p.addr.clone());
        if let Some((field, _)) = search {
            ev = ev.detail("field", field);
        }
        drop(tx);
        self.ledger.append(ev).await?;
        Ok(out)
    }

    /// Reveals one field of one record (op `view`), with the stated purpose; the reveal is the
    /// recorded access, durable before the value is returned.
    pub async fn reveal(&self, p: &Principal, business: &str, uid: &str, field: &str, purpose: &str) -> Result<Revealed> {
        self.require(p, Action::VaultUse).await?;
        let purpose = purpose.trim();
        if purpose.is_empty() || purpose.chars().count() > 200 {
            return Err(CoreError::invalid("purpose", "state why you need to see this field (at most 200 characters)"));
        }
        let now = self.clock.now();
        // Reads only (schema and facts from memory while the request's epoch holds, the record a
        // hot read); the access event goes through the group-committed append, durable before
        // the value is returned (a reveal changes no state).
        let (b, fields) = self.business_fields(None, p.epoch, business).await?;
        let f = fields.iter().find(|f| f.name == field).ok_or_else(|| CoreError::invalid("field", "no such field"))?;
        if f.sensitivity == Sensitivity::MyNumber {
            // Revealing a My Number needs a fresh password check (SECURITY-BASELINE).
            self.require_recent_auth(p)?;
        }
        let (ok, rule) = self.decide_op(None, p, &b, Op::View, f.sensitivity == Sensitivity::MyNumber, now).await?;
        if !ok {
            return Err(self.denied(p, &b, Op::View, rule, Some((uid, field))).await);
        }
        // The record, the sealed value and its key's name in one query.
        let row: Option<(i64, String, Option<Vec<u8>>, Option<String>)> = self
            .db
            .row(
                None,
                "SELECT r.key_id, r.normal, v.sealed, k.kid FROM vault_records r \
                 LEFT JOIN vault_values v ON v.record_id = r.id AND v.field = $1 \
                 LEFT JOIN vault_keys k ON k.id = r.key_id AND k.destroyed_at IS NULL \
                 WHERE r.business_id = $2 AND r.uid = $3",
                &[Arg::Text(field), Arg::Int(b.id), Arg::Text(uid)],
            )
            .await?;
        let (key_id, normal, sealed, kid) = row.ok_or(CoreError::NotFound("record"))?;
        let value = if f.sensitivity == Sensitivity::Normal {
            let m: BTreeMap<String, String> = serde_json::from_str(&normal).unwrap_or_default();
            m.get(field).cloned().unwrap_or_default()
        } else {
            match sealed {
                None => String::new(),
                Some(sealed) => {
                    let kid = kid.ok_or(CoreError::NotFound("data key (destroyed)"))?;
                    let dek = self.vault.dek(b.id, key_id, &kid)?;
                    let plain = crypto::open(&dek, &sealed, &crypto::field_aad(b.id, uid, field))?;
                    String::from_utf8(plain).map_err(|_| CoreError::Internal("value is not text".into()))?
                }
            }
        };
        let ev = Event::new(now, p.actor(), "data.reveal")
            .object("record", uid)
            .client(&b.client)
            .rule(&rule)
            .purpose(purpose)
            .detail("business", &b.code)
            .detail("field", field)
            .addr(p.addr.clone());
        self.ledger.append(ev).await?;
        Ok(Revealed { uid: uid.to_owned(), field: field.to_owned(), value })
    }
}

/// A deletion certificate (データ削除証明書): a signed note by the centre's key.
#[derive(Debug, Clone, Serialize)]
pub struct DeletionCertificate {
    /// Its number; `GET /api/v1/deletion-certificates/{id}/pdf` is the PDF.
    pub id: i64,
    pub certificate: String,
    pub records: i64,
    pub keys_destroyed: Vec<i64>,
    /// Index of the deletion's event in the centre's log.
    pub ledger_index: u64,
}

impl Mamori {
    /// Deletes all of a business's customer data at contract end (LIFE-3, LIFE-7): its data keys
    /// are destroyed (crypto-shredding), the ciphertext and records removed, the deletion
    /// recorded in the client's log, and a certificate signed with the centre's key returned.
    pub async fn delete_business_data(&self, p: &Principal, business: &str, reason: &str) -> Result<DeletionCertificate> {
        self.require(p, Action::VaultSchema).await?;
        self.require_recent_auth(p)?;
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 || reason.contains('\n') {
            return Err(CoreError::invalid("reason", "state the reason (contract end, client's request…), one line"));
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let b = self.business(&mut tx, business).await?;
        // Write first (SQLite takes its write lock before any read).
        let keys: Vec<(i64, Option<String>)> = sqlx::query_as("SELECT id, kid FROM vault_keys WHERE business_id = $1 AND destroyed_at IS NULL ORDER BY id")
            .bind(b.id)
            .fetch_all(&mut *tx)
            .await?;
        sqlx::query("UPDATE vault_keys SET wrapped = $1, destroyed_at = $2 WHERE business_id = $3 AND destroyed_at IS NULL")
            .bind(Vec::<u8>::new())
            .bind(now.timestamp_millis())
            .bind(b.id)
            .execute(&mut *tx)
            .await?;
        let (records,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM vault_records WHERE business_id = $1").bind(b.id).fetch_one(&mut *tx).await?;
        sqlx::query("DELETE FROM vault_values WHERE record_id IN (SELECT id FROM vault_records WHERE business_id = $1)").bind(b.id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM vault_records WHERE business_id = $1").bind(b.id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM vault_entries WHERE business_id = $1").bind(b.id).execute(&mut *tx).await?;
        // The keys leave the key store before the transaction commits: should that fail, the
        // data is unreadable all the same, and the deletion can be run again.
        for (_, kid) in &keys {
            if let Some(kid) = kid {
                self.vault.forget(kid);
                self.vault.kek.destroy(kid)?;
            }
        }
        let key_ids: Vec<i64> = keys.into_iter().map(|(k, _)| k).collect();
        let ids = key_ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let ev = Event::new(now, p.actor(), "data.delete_all")
            .object("business", &b.code)
            .client(&b.client)
            .detail("records", records)
            .detail("keys_destroyed", &ids)
            .detail("reason", reason);
        let (utc, jst) = mamori_ledger::event::timestamps(now);
        let idx = self.ledger.append_tx(&mut tx, &ev).await?;
        let body = format!(
            "mamori データ削除証明書 / data deletion certificate\n\
             centre: {}\nclient: {}\nbusiness: {}\nrecords: {records}\ndata keys destroyed: {}\nmethod: crypto-shredding (data keys destroyed), ciphertext removed\n\
             reason: {reason}\ndeleted at: {jst} ({utc})\nledger: {} log entry {idx} (action data.delete_all)\n",
            self.settings.centre_name,
            b.client,
            b.code,
            if ids.is_empty() { "-".to_owned() } else { ids },
            self.settings.centre_name,
        );
        let certificate = self.ledger.sign_note(&body);
        let (cert_id,): (i64,) = sqlx::query_as(
            "INSERT INTO deletion_certificates (client_id, business, note, ledger_index, created_at) SELECT client_id, $1, $2, $3, $4 FROM businesses WHERE id = $5 RETURNING id",
        )
        .bind(&b.code)
        .bind(&certificate)
        .bind(i64::try_from(idx).unwrap_or(i64::MAX))
        .bind(now.timestamp_millis())
        .bind(b.id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(DeletionCertificate { id: cert_id, certificate, records, keys_destroyed: key_ids, ledger_index: idx })
    }
}

impl Mamori {
    /// Rotates the key-encryption key: every data key in the key store is re-wrapped under a new
    /// KEK while the server runs (reads go on from the data-key cache). Returns how many.
    pub async fn rotate_kek(&self, p: &Principal) -> Result<usize> {
        self.require(p, Action::VaultSchema).await?;
        self.require_recent_auth(p)?;
        let kek = self.vault.kek.clone();
        let n = tokio::task::spawn_blocking(move || kek.rotate()).await.map_err(|e| CoreError::Internal(e.to_string()))??;
        let ev = Event::new(self.clock.now(), p.actor(), "vault.kek_rotate").detail("keys", n);
        self.ledger.append(ev).await?;
        Ok(n)
    }

    /// Starts a new data key for a business: new records are sealed under it, older ones stay
    /// readable under theirs (and all are destroyed together at deletion).
    pub async fn rotate_data_key(&self, p: &Principal, business: &str) -> Result<i64> {
        self.require(p, Action::VaultSchema).await?;
        let mut tx = self.db.begin().await?;
        let b = self.business(&mut tx, business).await?;
        let (id, _) = self.new_data_key(&mut tx, &b).await?;
        let ev = Event::new(self.clock.now(), p.actor(), "vault.dek_rotate").object("business", &b.code).client(&b.client).detail("key", id);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A deletion certificate as the signed note (for the client's own check) and as a PDF.
    pub async fn deletion_certificate(&self, p: &Principal, id: i64) -> Result<(String, Vec<u8>)> {
        self.require(p, Action::VaultSchema).await?;
        let row: Option<(String,)> = sqlx::query_as("SELECT note FROM deletion_certificates WHERE id = $1").bind(id).fetch_optional(&self.db.pool).await?;
        let (note,) = row.ok_or(CoreError::NotFound("deletion certificate"))?;
        let pdf = crate::pdf::certificate_pdf(&note);
        Ok((note, pdf))
    }
}

fn check_values(fields: &[FieldRow], values: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in values {
        if !fields.iter().any(|f| &f.name == k) {
            return Err(CoreError::invalid(k, "no such field in this business's schema"));
        }
        if v.chars().count() > 2000 || v.chars().any(|c| c.is_control() && c != '\n') {
            return Err(CoreError::invalid(k, "at most 2000 characters, without control characters"));
        }
        let f = fields.iter().find(|f| &f.name == k);
        if f.is_some_and(|f| f.sensitivity == Sensitivity::CardNumber) {
            let digits = v.chars().filter(char::is_ascii_digit).count();
            if !(12..=19).contains(&digits) || v.chars().any(|c| !c.is_ascii_digit() && c != ' ' && c != '-') {
                return Err(CoreError::invalid(k, "a card number is 12 to 19 digits"));
            }
        }
        if f.is_some_and(|f| f.sensitivity == Sensitivity::MyNumber) && (v.len() != 12 || !v.chars().all(|c| c.is_ascii_digit())) {
            return Err(CoreError::invalid(k, "a My Number is 12 digits"));
        }
    }
    Ok(())
}

async fn user_id(conn: &mut AnyConnection, login: &str) -> Result<i64> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM users WHERE login = $1").bind(login).fetch_optional(&mut *conn).await?;
    row.map(|r| r.0).ok_or_else(|| CoreError::invalid("login", format!("no such account: {login}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No combination of link, presence, terminal, holding, grants and My Number lets an
        /// operation through unless the person is linked, inside the zone, on a terminal
        /// registered there, holds or was granted it, and a My Number field sits in a My Number
        /// business (DATA-1 to DATA-7, MYNUM-1).
        #[test]
        fn nothing_opens_that_the_policy_does_not_allow(b in proptest::collection::vec(any::<bool>(), 7), op in 0usize..9) {
            let st = VaultState::new(Arc::new(crypto::FileKek::load_or_create(&std::env::temp_dir().join(format!("kek-{}", std::process::id()))).unwrap())).unwrap();
            let names = ["linked", "present", "holder", "granted", "my_number_field", "my_number_business", "terminal"];
            let facts: Vec<(&'static str, bool)> = names.iter().copied().zip(b.iter().copied()).collect();
            let (allowed, rule) = st.policy.evaluate(Op::ALL[op].as_str(), 1, 1, &facts).unwrap();
            let should = b[0] && b[1] && b[6] && (b[2] || b[3]) && (!b[4] || b[5]);
            prop_assert_eq!(allowed, should, "rule {}", rule);
        }
    }

    /// The SQLite ledger writer's insert of a record, which has no `RETURNING` (ARCHITECTURE.md,
    /// "The bundled SQLite is built without process-wide locks on its hot paths"): each
    /// record's sealed values hang on the row that its own insert made, and under a data key
    /// destroyed meanwhile nothing at all is written (DATA-4, LIFE-3).
    #[tokio::test]
    async fn sqlite_writer_inserts_a_record_only_under_a_live_key() {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::db::sqlite_url(dir.path());
        drop(crate::db::Db::connect(&url).await.unwrap());
        let conn = rusqlite::Connection::open(crate::db::sqlite_path(&url).unwrap()).unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        conn.execute_batch(
            "INSERT INTO clients (id, code, name, created_at) VALUES (1, 'C1', 'c', 0);
             INSERT INTO businesses (id, code, name, client_id, created_at) VALUES (1, 'B1', 'b', 1, 0);
             INSERT INTO vault_keys (id, business_id, wrapped, created_at) VALUES (1, 1, x'00', 0), (2, 1, x'00', 0);
             UPDATE vault_keys SET destroyed_at = 1 WHERE id = 2;",
        )
        .unwrap();
        let rec = |uid: &str, key_id: i64| NewRecord {
            uid: uid.into(),
            business: 1,
            key_id,
            normal: "{}".into(),
            created_by: 1,
            created_at: 0,
            values: vec![("phone".into(), uid.as_bytes().to_vec(), "0＊＊".into(), None), ("name".into(), vec![9], "山＊".into(), None)],
        };
        for uid in ["r1", "r2"] {
            rec(uid, 1).insert_sqlite(&conn).unwrap();
        }
        assert!(matches!(rec("gone", 2).insert_sqlite(&conn), Err(CoreError::NotFound(_))));
        let rows: Vec<(String, String, Vec<u8>)> = conn
            .prepare("SELECT r.uid, v.field, v.sealed FROM vault_values v JOIN vault_records r ON r.id = v.record_id ORDER BY r.uid, v.field")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let want = |uid: &str| [(uid.to_owned(), "name".to_owned(), vec![9]), (uid.to_owned(), "phone".to_owned(), uid.as_bytes().to_vec())];
        assert_eq!(rows, [want("r1"), want("r2")].concat());
        let records: i64 = conn.query_row("SELECT count(*) FROM vault_records", [], |r| r.get(0)).unwrap();
        assert_eq!(records, 2, "nothing of the record under the destroyed key");
    }

    #[test]
    fn masks() {
        assert_eq!(mask(Sensitivity::CardNumber, "4111 1111 1111 1234"), "**** **** **** 1234");
        assert_eq!(mask(Sensitivity::MyNumber, "123456789012"), "************");
        assert_eq!(mask(Sensitivity::Personal, "山田 太郎"), "山＊＊＊＊");
        assert_eq!(mask(Sensitivity::Normal, "A-1"), "A-1");
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HolderRow {
    pub login: String,
    pub name: String,
    pub approved_by: String,
    pub approved_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GrantRow {
    pub id: i64,
    pub login: String,
    pub name: String,
    pub ops: Vec<String>,
    pub purpose: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub granted_by: String,
    pub revoked_at: Option<i64>,
    pub active: bool,
    /// Waiting for a second standing holder's approval.
    pub awaiting_approval: bool,
    pub approved_by: Option<String>,
}

/// The access-holder list of a business (アクセス権限者リスト) and its grant history.
#[derive(Debug, Clone, Serialize)]
pub struct AccessList {
    pub business: String,
    pub holders: Vec<HolderRow>,
    pub grants: Vec<GrantRow>,
    /// Whether the caller is a standing holder (may grant).
    pub caller_is_holder: bool,
}

impl Mamori {
    pub async fn access_list(&self, p: &Principal, business: &str) -> Result<AccessList> {
        self.require(p, Action::VaultUse).await?;
        let now = self.clock.now().timestamp_millis();
        let mut conn = self.db.pool.acquire().await?;
        let b = self.business(&mut conn, business).await?;
        let holders: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT u.login, u.display_name, a.login, h.approved_at FROM vault_holders h JOIN users u ON u.id = h.user_id \
             JOIN users a ON a.id = h.approved_by WHERE h.business_id = $1 ORDER BY u.login",
        )
        .bind(b.id)
        .fetch_all(&mut *conn)
        .await?;
        #[allow(clippy::type_complexity)]
        let grants: Vec<(i64, String, String, String, String, i64, i64, String, Option<i64>, i64, Option<String>)> = sqlx::query_as(
            "SELECT g.id, u.login, u.display_name, g.ops, g.purpose, g.starts_at, g.ends_at, a.login, g.revoked_at, g.needs_second, s.login FROM vault_grants g \
             JOIN users u ON u.id = g.user_id JOIN users a ON a.id = g.granted_by LEFT JOIN users s ON s.id = g.approved_by \
             WHERE g.business_id = $1 ORDER BY g.id DESC LIMIT 500",
        )
        .bind(b.id)
        .fetch_all(&mut *conn)
        .await?;
        let caller_is_holder = self.is_holder(&mut conn, b.id, p.user_id).await?;
        Ok(AccessList {
            business: b.code,
            holders: holders.into_iter().map(|(login, name, approved_by, approved_at)| HolderRow { login, name, approved_by, approved_at }).collect(),
            grants: grants
                .into_iter()
                .map(|(id, login, name, ops, purpose, starts_at, ends_at, granted_by, revoked_at, needs, approved_by)| GrantRow {
                    id,
                    login,
                    name,
                    ops: ops.split(',').map(str::to_owned).collect(),
                    purpose,
                    starts_at,
                    ends_at,
                    granted_by,
                    active: revoked_at.is_none() && starts_at <= now && now < ends_at && (needs == 0 || approved_by.is_some()),
                    awaiting_approval: revoked_at.is_none() && now < ends_at && needs != 0 && approved_by.is_none(),
                    approved_by,
                    revoked_at,
                })
                .collect(),
            caller_is_holder,
        })
    }
}
