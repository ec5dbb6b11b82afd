//! Visitors (PHY-9): reception registers a visit with host, purpose, zones and expected time,
//! issues a temporary card, records the exit and the card's return. A card not returned by
//! the end of the visit's day raises an alarm and stops working.

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use mamori_ledger::Event;
use serde::{Deserialize, Serialize};

use super::card::CardNumber;
use super::service::{id_of, person_id};
use super::AlarmKind;
use crate::auth::Principal;
use crate::error::{CoreError, Result};
use crate::policy::Action;
use crate::types::{Code, Text, ZoneLevel};
use crate::Mamori;

/// The hour (Japan time) at which a visit's day ends for unreturned cards.
pub const DAY_END_HOUR: u32 = 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewVisit {
    pub name: Text,
    #[serde(default)]
    pub company: Option<String>,
    /// The host employee's number.
    pub host: Code,
    pub purpose: Text,
    pub zones: Vec<Code>,
    pub expected_from: DateTime<Utc>,
    pub expected_to: DateTime<Utc>,
    /// The temporary card handed over now; none: issued later at check-in.
    #[serde(default)]
    pub card: Option<CardNumber>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VisitRow {
    pub id: i64,
    pub visitor_id: i64,
    pub visitor_no: String,
    pub name: String,
    pub company: String,
    pub host_no: String,
    pub host_name: String,
    pub purpose: String,
    pub zones: Vec<String>,
    pub expected_from: i64,
    pub expected_to: i64,
    pub card: Option<String>,
    pub checked_in_at: Option<i64>,
    pub checked_out_at: Option<i64>,
    pub card_returned_at: Option<i64>,
}

/// When the day of a visit ending at `to` ends (20:00 Japan time that day, or `to` if later).
pub fn day_end(to: DateTime<Utc>) -> DateTime<Utc> {
    let j = super::rules::jst(to);
    let end = NaiveTime::from_hms_opt(DAY_END_HOUR, 0, 0).unwrap_or_default();
    let e = j.timezone().from_local_datetime(&j.date_naive().and_time(end)).single().map(|x| x.with_timezone(&Utc));
    e.map_or(to, |e| e.max(to))
}

impl Mamori {
    pub async fn register_visit(&self, p: &Principal, v: NewVisit) -> Result<i64> {
        self.require(p, Action::VisitorsManage).await?;
        if v.zones.is_empty() {
            return Err(CoreError::invalid("zones", "name the zones the visitor may enter"));
        }
        if v.expected_to <= v.expected_from {
            return Err(CoreError::invalid("expected_to", "must be after the expected arrival"));
        }
        if v.expected_to - v.expected_from > chrono::Duration::hours(24) {
            return Err(CoreError::invalid("expected_to", "a visit lasts at most 24 hours"));
        }
        let company = v.company.as_deref().unwrap_or("").trim().to_owned();
        if company.chars().count() > 200 || company.chars().any(char::is_control) {
            return Err(CoreError::invalid("company", "must be at most 200 characters"));
        }
        let now = self.clock.now();
        let rules = self.doors.rules();
        let mut tx = self.db.begin().await?;
        let host = person_id(&mut tx, v.host.as_str()).await?;
        let (host_kind, host_status): (String, String) =
            sqlx::query_as("SELECT kind, status FROM people WHERE id = $1").bind(host).fetch_one(&mut *tx).await?;
        if host_kind == "visitor" || host_status != "active" {
            return Err(CoreError::invalid("host", "the host must be an active member of staff"));
        }
        let mut zone_ids = Vec::new();
        for z in &v.zones {
            let id = id_of(&mut tx, "zones", "zones", z.as_str()).await?;
            if rules.zones.get(&id).is_some_and(|zi| zi.level == ZoneLevel::Server) {
                return Err(CoreError::invalid("zones", format!("visitors never enter the server room ({z}) (PHY-9)")));
            }
            zone_ids.push(id.to_string());
        }
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM visits").fetch_one(&mut *tx).await?;
        let no = format!("V{}-{:05}", super::rules::jst(v.expected_from).format("%Y%m%d"), count + 1);
        let (visitor,): (i64,) = sqlx::query_as(
            "INSERT INTO people (employee_no, name, kana, kind, position, duties, status, created_at, updated_at) \
             VALUES ($1, $2, '', 'visitor', '', '', 'active', $3, $4) RETURNING id",
        )
        .bind(&no)
        .bind(v.name.as_str())
        .bind(now.timestamp_millis())
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO visits (visitor_id, host_id, company, purpose, zones, expected_from, expected_to, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(visitor)
        .bind(host)
        .bind(&company)
        .bind(v.purpose.as_str())
        .bind(zone_ids.join(","))
        .bind(v.expected_from.timestamp_millis())
        .bind(v.expected_to.timestamp_millis())
        .bind(p.user_id)
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?;
        let ev = Event::new(now, p.actor(), "visit.register")
            .object("visit", id)
            .detail("visitor", visitor)
            .detail("host", host)
            .detail("zones", v.zones.iter().map(Code::as_str).collect::<Vec<_>>().join(","));
        self.ledger.append_tx(&mut tx, &ev).await?;
        if let Some(card) = &v.card {
            self.check_in_in(&mut tx, p, id, visitor, card).await?;
        }
        tx.commit().await?;
        self.reload_door_rules().await?;
        Ok(id)
    }

    async fn check_in_in(&self, conn: &mut sqlx::AnyConnection, p: &Principal, visit: i64, visitor: i64, card: &CardNumber) -> Result<()> {
        let (cred, _) = self.issue_in(conn, p, visitor, card.format().as_str(), card.number()).await?;
        sqlx::query("UPDATE visits SET credential_id = $1, checked_in_at = $2 WHERE id = $3")
            .bind(cred)
            .bind(self.clock.now().timestamp_millis())
            .bind(visit)
            .execute(&mut *conn)
            .await?;
        let ev = Event::new(self.clock.now(), p.actor(), "visit.check_in").object("visit", visit).detail("credential", cred);
        self.ledger.append_tx(conn, &ev).await?;
        Ok(())
    }

    /// Hands the temporary card to a registered visitor.
    pub async fn check_in_visit(&self, p: &Principal, visit: i64, card: CardNumber) -> Result<()> {
        self.require(p, Action::VisitorsManage).await?;
        let mut tx = self.db.begin().await?;
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT visitor_id, credential_id FROM visits WHERE id = $1 AND checked_out_at IS NULL")
                .bind(visit)
                .fetch_optional(&mut *tx)
                .await?;
        let (visitor, cred) = row.ok_or(CoreError::NotFound("open visit"))?;
        if cred.is_some() {
            return Err(CoreError::Conflict("this visitor already holds a card".into()));
        }
        self.check_in_in(&mut tx, p, visit, visitor, &card).await?;
        tx.commit().await?;
        self.reload_door_rules().await?;
        Ok(())
    }

    /// Records the visitor's exit and whether the card came back; a card not returned stops
    /// working at once and raises the end-of-day alarm.
    pub async fn check_out_visit(&self, p: &Principal, visit: i64, card_returned: bool) -> Result<()> {
        self.require(p, Action::VisitorsManage).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT visitor_id, credential_id FROM visits WHERE id = $1 AND checked_out_at IS NULL")
                .bind(visit)
                .fetch_optional(&mut *tx)
                .await?;
        let (visitor, cred) = row.ok_or(CoreError::NotFound("open visit"))?;
        sqlx::query("UPDATE visits SET checked_out_at = $1, card_returned_at = $2 WHERE id = $3")
            .bind(now.timestamp_millis())
            .bind(if card_returned && cred.is_some() { Some(now.timestamp_millis()) } else { None })
            .bind(visit)
            .execute(&mut *tx)
            .await?;
        let status = if card_returned { "returned" } else { "lost" };
        let mut cards = Vec::new();
        if let Some(c) = cred {
            let row: Option<(String, String)> =
                sqlx::query_as("SELECT kind, number FROM credentials WHERE id = $1 AND status = 'active'").bind(c).fetch_optional(&mut *tx).await?;
            sqlx::query("UPDATE credentials SET status = $1, ended_at = $2, end_reason = 'visit ended' WHERE id = $3 AND status = 'active'")
                .bind(status)
                .bind(now.timestamp_millis())
                .bind(c)
                .execute(&mut *tx)
                .await?;
            if let Some((k, n)) = row {
                cards.push(format!("{k}:{n}"));
            }
        }
        // The visitor leaves the site.
        sqlx::query("DELETE FROM presence WHERE person_id = $1").bind(visitor).execute(&mut *tx).await?;
        let ev = Event::new(now, p.actor(), "visit.check_out").object("visit", visit).detail("card", status);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        self.after_revocation(visitor, cards).await
    }

    /// Raises the alarm for every visitor card not returned by the end of its visit's day,
    /// once per visit, and stops the card. Run by the server every minute; returns how many.
    pub async fn check_visitor_cards(&self) -> Result<usize> {
        let now = self.clock.now();
        let rows: Vec<(i64, i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT id, visitor_id, expected_to, credential_id FROM visits \
             WHERE credential_id IS NOT NULL AND card_returned_at IS NULL AND alarm_raised_at IS NULL",
        )
        .fetch_all(&self.db.pool)
        .await?;
        let mut n = 0;
        for (id, visitor, to, cred) in rows {
            let to = DateTime::from_timestamp_millis(to).unwrap_or(now);
            if now < day_end(to) {
                continue;
            }
            let mut tx = self.db.begin().await?;
            let done = sqlx::query("UPDATE visits SET alarm_raised_at = $1 WHERE id = $2 AND alarm_raised_at IS NULL")
                .bind(now.timestamp_millis())
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if done == 0 {
                continue;
            }
            let card: Option<(String, String)> = sqlx::query_as("SELECT kind, number FROM credentials WHERE id = $1 AND status = 'active'")
                .bind(cred)
                .fetch_optional(&mut *tx)
                .await?;
            sqlx::query("UPDATE credentials SET status = 'lost', ended_at = $1, end_reason = 'not returned' WHERE id = $2 AND status = 'active'")
                .bind(now.timestamp_millis())
                .bind(cred)
                .execute(&mut *tx)
                .await?;
            self.raise_alarm_in(&mut tx, AlarmKind::VisitorCardNotReturned, None, None, Some(visitor), &format!("visit {id}"), now).await?;
            tx.commit().await?;
            self.after_revocation(visitor, card.map(|(k, n)| vec![format!("{k}:{n}")]).unwrap_or_default()).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Visits expected on the Japan-time day of `day` (or still open).
    pub async fn list_visits(&self, p: &Principal, day: chrono::NaiveDate) -> Result<Vec<VisitRow>> {
        self.require(p, Action::VisitorsManage).await?;
        let off = chrono::FixedOffset::east_opt(9 * 3600).ok_or(CoreError::Internal("offset".into()))?;
        let start = off.from_local_datetime(&day.and_time(NaiveTime::MIN)).single().map_or(0, |d| d.timestamp_millis());
        let end = start + 86_400_000;
        type R = (i64, i64, String, String, String, String, String, String, String, i64, i64, Option<String>, Option<String>, Option<i64>, Option<i64>, Option<i64>);
        let rows: Vec<R> = sqlx::query_as(
            "SELECT v.id, v.visitor_id, pv.employee_no, pv.name, v.company, ph.employee_no, ph.name, v.purpose, v.zones, \
             v.expected_from, v.expected_to, c.kind, c.number, v.checked_in_at, v.checked_out_at, v.card_returned_at \
             FROM visits v JOIN people pv ON pv.id = v.visitor_id JOIN people ph ON ph.id = v.host_id \
             LEFT JOIN credentials c ON c.id = v.credential_id \
             WHERE (v.expected_from < $1 AND v.expected_to >= $2) OR v.checked_out_at IS NULL ORDER BY v.expected_from",
        )
        .bind(end)
        .bind(start)
        .fetch_all(&self.db.pool)
        .await?;
        let rules = self.doors.rules();
        Ok(rows
            .into_iter()
            .map(|(id, visitor_id, visitor_no, name, company, host_no, host_name, purpose, zones, from, to, ck, cn, cin, cout, ret)| VisitRow {
                id,
                visitor_id,
                visitor_no,
                name,
                company,
                host_no,
                host_name,
                purpose,
                zones: zones
                    .split(',')
                    .filter_map(|z| z.parse::<i64>().ok())
                    .filter_map(|z| rules.zones.get(&z).map(|zi| zi.code.clone()))
                    .collect(),
                expected_from: from,
                expected_to: to,
                card: ck.zip(cn).map(|(k, n)| format!("{k}:{n}")),
                checked_in_at: cin,
                checked_out_at: cout,
                card_returned_at: ret,
            })
            .collect())
    }
}
