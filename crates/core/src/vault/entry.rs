//! Double entry (DATA-10): in a business that requires it, two different operators key each
//! form independently; mamori compares their entries field by field, accepts a form whose two
//! entries agree as a record, and sends the fields that disagree to a third person, who sees
//! both entries and decides. Neither operator ever sees the other's entry: the first entry is
//! sealed under the business's data key and no route returns it to either of them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use mamori_ledger::Event;
use serde::Serialize;

use super::{check_values, crypto, Business, FieldRow};
use crate::auth::Principal;
use crate::error::{CoreError, Result};
use crate::policy::Action;
use crate::types::{Op, Sensitivity};
use crate::Mamori;

/// What became of a submitted entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EntryOutcome {
    /// The first entry of the form: it waits for a second operator.
    Waiting,
    /// Both entries agree: the record exists.
    Accepted { uid: String },
    /// The entries disagree on these fields: a third person resolves them.
    Mismatch { fields: Vec<String> },
}

/// A form whose two entries disagree (names of fields only, never values).
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub id: i64,
    pub form_no: String,
    pub fields: Vec<String>,
    pub first_by: String,
    pub second_by: String,
    pub at: i64,
}

/// Both entries of the disagreeing fields, for the person who resolves them.
#[derive(Debug, Clone, Serialize)]
pub struct MismatchDetail {
    pub id: i64,
    pub form_no: String,
    pub fields: Vec<MismatchField>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MismatchField {
    pub name: String,
    pub label: String,
    pub first: String,
    pub second: String,
}

fn form_no(s: &str) -> Result<String> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > 64 || t.chars().any(char::is_control) {
        return Err(CoreError::invalid("form_no", "the form number (伝票番号) is 1 to 64 characters"));
    }
    Ok(t.to_owned())
}

fn entry_aad(business: i64, form: &str, n: u8) -> Vec<u8> {
    format!("mamori-entry/v1|{business}|{form}|{n}").into_bytes()
}

/// Fields whose two entries differ (after trimming; an empty field equals a missing one).
pub fn differing(fields: &[FieldRow], a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let get = |m: &BTreeMap<String, String>, k: &str| m.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    fields.iter().filter(|f| get(a, &f.name) != get(b, &f.name)).map(|f| f.name.clone()).collect()
}

type EntryRow = (i64, i64, i64, Vec<u8>, Option<i64>, Option<Vec<u8>>, String, String);

impl Mamori {
    /// Turns double entry on or off for a business (the security office, `vault.schema`).
    pub async fn set_double_entry(&self, p: &Principal, business: &str, on: bool) -> Result<()> {
        self.require(p, Action::VaultSchema).await?;
        let mut tx = self.db.begin().await?;
        let b = self.business(&mut tx, business).await?;
        sqlx::query("UPDATE businesses SET double_entry = $1 WHERE id = $2").bind(i64::from(on)).bind(b.id).execute(&mut *tx).await?;
        let ev = Event::new(self.clock.now(), p.actor(), "vault.double_entry").object("business", &b.code).client(&b.client).detail("on", on);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// How a business works: (requires double entry, handles My Numbers).
    pub async fn business_flags(&self, p: &Principal, business: &str) -> Result<(bool, bool)> {
        self.require(p, Action::VaultUse).await?;
        let mut conn = self.db.pool.acquire().await?;
        let b = self.business(&mut conn, business).await?;
        Ok((b.double_entry, b.my_number))
    }

    /// One operator's entry of a form (op `input`).
    pub async fn submit_entry(&self, p: &Principal, business: &str, form: &str, values: BTreeMap<String, String>) -> Result<EntryOutcome> {
        self.require(p, Action::VaultUse).await?;
        let form = form_no(form)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let b = self.business(&mut tx, business).await?;
        if !b.double_entry {
            return Err(CoreError::invalid("business", "this business does not use double entry; key the record directly"));
        }
        let fields = self.fields_of(&mut tx, b.id).await?;
        // Compared and kept as keyed, less surrounding spaces; an empty field is no value.
        let values: BTreeMap<String, String> = values.into_iter().map(|(k, v)| (k, v.trim().to_owned())).filter(|(_, v)| !v.is_empty()).collect();
        check_values(&fields, &values)?;
        if values.is_empty() {
            return Err(CoreError::invalid("values", "the entry is empty"));
        }
        let has_mn = fields.iter().any(|f| f.sensitivity == Sensitivity::MyNumber && values.contains_key(&f.name));
        let (ok, rule) = self.decide_op(Some(&mut *tx), p, &b, Op::Input, has_mn, now).await?;
        if !ok {
            drop(tx);
            return Err(self.denied(p, &b, Op::Input, rule, None).await);
        }
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(&values).map_err(|e| CoreError::Internal(e.to_string()))?);
        let existing: Option<EntryRow> = sqlx::query_as(
            "SELECT id, key_id, first_by, first_sealed, second_by, second_sealed, state, mismatched FROM vault_entries WHERE business_id = $1 AND form_no = $2",
        )
        .bind(b.id)
        .bind(&form)
        .fetch_optional(&mut *tx)
        .await?;
        let ev = |action: &str| Event::new(now, p.actor(), action).object("form", &form).client(&b.client).rule(&rule).detail("business", &b.code).addr(p.addr.clone());
        let Some((id, key_id, first_by, first_sealed, _, _, state, _)) = existing else {
            let (key_id, dek) = self.data_key(&mut tx, &b).await?;
            let sealed = crypto::seal(&dek, &plain, &entry_aad(b.id, &form, 1))?;
            sqlx::query(
                "INSERT INTO vault_entries (business_id, form_no, key_id, first_by, first_sealed, first_at, state) VALUES ($1, $2, $3, $4, $5, $6, 'waiting')",
            )
            .bind(b.id)
            .bind(&form)
            .bind(key_id)
            .bind(p.user_id)
            .bind(sealed)
            .bind(now.timestamp_millis())
            .execute(&mut *tx)
            .await?;
            self.ledger.append_tx(&mut tx, &ev("data.entry_first")).await?;
            tx.commit().await?;
            return Ok(EntryOutcome::Waiting);
        };
        if state != "waiting" {
            return Err(CoreError::Conflict(format!("form {form} has been keyed twice already")));
        }
        if first_by == p.user_id {
            return Err(CoreError::Forbidden { rule: Some("second-entry-by-another-operator".into()) });
        }
        let dek = self.key_by_id(&mut tx, &b, key_id).await?;
        let first_plain = zeroize::Zeroizing::new(crypto::open(&dek, &first_sealed, &entry_aad(b.id, &form, 1))?);
        let first: BTreeMap<String, String> = serde_json::from_slice(&first_plain).map_err(|e| CoreError::Internal(e.to_string()))?;
        let diff = differing(&fields, &first, &values);
        let sealed = crypto::seal(&dek, &plain, &entry_aad(b.id, &form, 2))?;
        if diff.is_empty() {
            let (cur_key, cur_dek) = self.data_key(&mut tx, &b).await?;
            let uid = self.insert_record(&mut tx, p, &b, &fields, cur_key, &cur_dek, &values, &rule, now).await?;
            // The entries are no longer needed once the record exists.
            sqlx::query(
                "UPDATE vault_entries SET second_by = $1, second_at = $2, second_sealed = $3, first_sealed = $4, state = 'accepted', record_uid = $5 WHERE id = $6",
            )
            .bind(p.user_id)
            .bind(now.timestamp_millis())
            .bind(Vec::<u8>::new())
            .bind(Vec::<u8>::new())
            .bind(&uid)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            self.ledger.append_tx(&mut tx, &ev("data.entry_match").detail("record", &uid)).await?;
            tx.commit().await?;
            return Ok(EntryOutcome::Accepted { uid });
        }
        sqlx::query("UPDATE vault_entries SET second_by = $1, second_at = $2, second_sealed = $3, state = 'mismatch', mismatched = $4 WHERE id = $5")
            .bind(p.user_id)
            .bind(now.timestamp_millis())
            .bind(sealed)
            .bind(diff.join(","))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.ledger.append_tx(&mut tx, &ev("data.entry_mismatch").detail("fields", diff.join(","))).await?;
        tx.commit().await?;
        Ok(EntryOutcome::Mismatch { fields: diff })
    }

    /// Forms waiting for a decision (field names only).
    pub async fn list_mismatches(&self, p: &Principal, business: &str) -> Result<Vec<Mismatch>> {
        self.require(p, Action::VaultUse).await?;
        let mut conn = self.db.pool.acquire().await?;
        let b = self.business(&mut conn, business).await?;
        let rows: Vec<(i64, String, String, String, String, Option<i64>)> = sqlx::query_as(
            "SELECT e.id, e.form_no, e.mismatched, a.login, s.login, e.second_at FROM vault_entries e JOIN users a ON a.id = e.first_by \
             JOIN users s ON s.id = e.second_by WHERE e.business_id = $1 AND e.state = 'mismatch' ORDER BY e.id",
        )
        .bind(b.id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, form_no, m, first_by, second_by, at)| Mismatch {
                id,
                form_no,
                fields: m.split(',').map(str::to_owned).collect(),
                first_by,
                second_by,
                at: at.unwrap_or_default(),
            })
            .collect())
    }

    /// Opens a disagreeing form for its resolver: a third person with `change` on the business;
    /// neither of its operators. Returns the entry row and both entries.
    async fn open_mismatch(
        &self,
        conn: &mut sqlx::AnyConnection,
        p: &Principal,
        b: &Business,
        id: i64,
        now: chrono::DateTime<Utc>,
    ) -> Result<(String, Vec<FieldRow>, Vec<String>, BTreeMap<String, String>, BTreeMap<String, String>, String)> {
        #[allow(clippy::type_complexity)]
        let row: Option<(String, i64, i64, Vec<u8>, Option<i64>, Option<Vec<u8>>, String, String)> = sqlx::query_as(
            "SELECT form_no, key_id, first_by, first_sealed, second_by, second_sealed, state, mismatched FROM vault_entries WHERE business_id = $1 AND id = $2",
        )
        .bind(b.id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        let (form, key_id, first_by, first_sealed, second_by, second_sealed, state, mismatched) = row.ok_or(CoreError::NotFound("entry"))?;
        if state != "mismatch" {
            return Err(CoreError::Conflict("this form is not waiting for a decision".into()));
        }
        if first_by == p.user_id || second_by == Some(p.user_id) {
            return Err(CoreError::Forbidden { rule: Some("third-person-resolves".into()) });
        }
        let (ok, rule) = self.decide_op(Some(&mut *conn), p, b, Op::Change, false, now).await?;
        if !ok {
            return Err(CoreError::Forbidden { rule: Some(rule) });
        }
        let dek = self.key_by_id(conn, b, key_id).await?;
        let open = |sealed: &[u8], n: u8| -> Result<BTreeMap<String, String>> {
            let plain = zeroize::Zeroizing::new(crypto::open(&dek, sealed, &entry_aad(b.id, &form, n))?);
            serde_json::from_slice(&plain).map_err(|e| CoreError::Internal(e.to_string()))
        };
        let first = open(&first_sealed, 1)?;
        let second = open(&second_sealed.unwrap_or_default(), 2)?;
        let fields = self.fields_of(conn, b.id).await?;
        Ok((form, fields, mismatched.split(',').map(str::to_owned).collect(), first, second, rule))
    }

    /// Both entries of the disagreeing fields, to the resolver; a recorded access.
    pub async fn mismatch_detail(&self, p: &Principal, business: &str, id: i64) -> Result<MismatchDetail> {
        self.require(p, Action::VaultUse).await?;
        let now = self.clock.now();
        let mut conn = self.db.pool.acquire().await?;
        let b = self.business(&mut conn, business).await?;
        let opened = self.open_mismatch(&mut conn, p, &b, id, now).await;
        drop(conn);
        let (form, fields, names, first, second, rule) = match opened {
            Ok(x) => x,
            Err(CoreError::Forbidden { rule: Some(r) }) => return Err(self.denied(p, &b, Op::Change, r, None).await),
            Err(e) => return Err(e),
        };
        let out = names
            .iter()
            .map(|n| MismatchField {
                name: n.clone(),
                label: fields.iter().find(|f| &f.name == n).map(|f| f.label.clone()).unwrap_or_default(),
                first: first.get(n).cloned().unwrap_or_default(),
                second: second.get(n).cloned().unwrap_or_default(),
            })
            .collect();
        let ev = Event::new(now, p.actor(), "data.entry_review")
            .object("form", &form)
            .client(&b.client)
            .rule(&rule)
            .detail("business", &b.code)
            .detail("fields", names.join(","))
            .addr(p.addr.clone());
        self.ledger.append(ev).await?;
        Ok(MismatchDetail { id, form_no: form, fields: out })
    }

    /// The resolver's decision: a value for each disagreeing field; the record is the first
    /// entry with those fields replaced.
    pub async fn resolve_mismatch(&self, p: &Principal, business: &str, id: i64, decided: BTreeMap<String, String>) -> Result<String> {
        self.require(p, Action::VaultUse).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let b = self.business(&mut tx, business).await?;
        let (form, fields, names, mut values, _, rule) = match self.open_mismatch(&mut tx, p, &b, id, now).await {
            Ok(x) => x,
            Err(CoreError::Forbidden { rule: Some(r) }) => {
                drop(tx);
                return Err(self.denied(p, &b, Op::Change, r, None).await);
            }
            Err(e) => return Err(e),
        };
        let wanted: BTreeSet<&String> = names.iter().collect();
        if let Some(k) = decided.keys().find(|k| !wanted.contains(k)) {
            return Err(CoreError::invalid(k, "only the fields that disagree are decided here"));
        }
        for n in &names {
            match decided.get(n).map(|v| v.trim()) {
                Some("") | None => {
                    values.remove(n);
                }
                Some(v) => {
                    values.insert(n.clone(), v.to_owned());
                }
            }
        }
        check_values(&fields, &values)?;
        let (key_id, dek) = self.data_key(&mut tx, &b).await?;
        let uid = self.insert_record(&mut tx, p, &b, &fields, key_id, &dek, &values, &rule, now).await?;
        sqlx::query("UPDATE vault_entries SET state = 'resolved', resolved_by = $1, record_uid = $2, first_sealed = $3, second_sealed = $4 WHERE id = $5")
            .bind(p.user_id)
            .bind(&uid)
            .bind(Vec::<u8>::new())
            .bind(Vec::<u8>::new())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let ev = Event::new(now, p.actor(), "data.entry_resolve")
            .object("form", &form)
            .client(&b.client)
            .rule(&rule)
            .detail("business", &b.code)
            .detail("fields", names.join(","))
            .detail("record", &uid)
            .addr(p.addr.clone());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(uid)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn f(name: &str) -> FieldRow {
        FieldRow { name: name.into(), label: name.into(), sensitivity: Sensitivity::Personal, searchable: false }
    }

    #[test]
    fn differences_are_per_field_after_trimming() {
        let fields = [f("name"), f("phone"), f("card")];
        let a: BTreeMap<String, String> = [("name", "山田 太郎"), ("phone", "090-1111-2222")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut b = a.clone();
        b.insert("name".into(), " 山田 太郎 ".into());
        b.insert("card".into(), "".into());
        assert!(differing(&fields, &a, &b).is_empty(), "spaces around and an empty field are no difference");
        b.insert("phone".into(), "090-1111-2223".into());
        assert_eq!(differing(&fields, &a, &b), vec!["phone".to_owned()]);
    }
}
