//! Incidents (INC-1, INC-2): a 24/365 intake (console form, and an API for the emergency contact
//! centre) open to all staff, triage by the security office that sets the facts the APPI clock
//! needs, the clock's grounds and deadlines, the nine-item draft report, and a timeline.

use chrono::{DateTime, Utc};
use mamori_ledger::Event;
use serde::{Deserialize, Serialize};

use super::appi::{clock, draft_report, AppiClock, LeakFacts};
use crate::auth::Principal;
use crate::error::{CoreError, Result};
use crate::policy::Action;
use crate::types::Text;
use crate::Mamori;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIncident {
    pub title: Text,
    pub summary: Text,
    /// Who reports it (name, or the contact centre's reference).
    pub reporter: Text,
    /// When the centre learnt of it; now when omitted.
    #[serde(default)]
    pub known_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Triage {
    pub facts: LeakFacts,
    #[serde(default)]
    pub items: String,
    #[serde(default)]
    pub cause: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct IncidentRow {
    pub id: i64,
    pub title: String,
    pub summary: String,
    pub reporter: String,
    pub channel: String,
    pub known_at: i64,
    pub state: String,
    pub facts: LeakFacts,
    pub items: String,
    pub cause: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct IncidentView {
    pub incident: IncidentRow,
    pub clock: AppiClock,
    pub draft: String,
    pub timeline: Vec<(i64, String, String)>,
}

type Row = (i64, String, String, String, String, i64, String, String, String, i64, i64, i64, i64, i64, i64, i64);

fn row(r: Row) -> IncidentRow {
    let (id, title, summary, reporter, channel, known_at, state, items, cause, people, sensitive, financial, improper, my_number, encrypted, processor) = r;
    IncidentRow {
        id,
        title,
        summary,
        reporter,
        channel,
        known_at,
        state,
        items,
        cause,
        facts: LeakFacts {
            sensitive: sensitive != 0,
            financial_damage: financial != 0,
            improper_purpose: improper != 0,
            people: u64::try_from(people).unwrap_or(0),
            my_number: my_number != 0,
            highly_encrypted: encrypted != 0,
            processor: processor != 0,
        },
    }
}

const COLS: &str = "id, title, summary, reporter, channel, known_at, state, items, cause, people, sensitive, financial_damage, improper_purpose, my_number, highly_encrypted, processor";

impl Mamori {
    /// Intake: any member of staff, any hour. `channel` is `console` or `api`.
    pub async fn report_incident(&self, p: &Principal, i: NewIncident, channel: &str) -> Result<i64> {
        self.require(p, Action::IncidentsReport).await?;
        let now = self.clock.now();
        let known = i.known_at.unwrap_or(now);
        if known > now {
            return Err(CoreError::invalid("known_at", "cannot be in the future"));
        }
        let mut tx = self.db.begin().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO incidents (title, summary, reporter, channel, known_at, state, created_by, created_at) VALUES ($1, $2, $3, $4, $5, 'open', $6, $7) RETURNING id",
        )
        .bind(i.title.as_str())
        .bind(i.summary.as_str())
        .bind(i.reporter.as_str())
        .bind(if channel == "api" { "api" } else { "console" })
        .bind(known.timestamp_millis())
        .bind(p.user_id)
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO incident_timeline (incident_id, at, by_user, note) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(now.timestamp_millis())
            .bind(p.user_id)
            .bind(format!("受付 ({channel})"))
            .execute(&mut *tx)
            .await?;
        let ev = Event::new(now, p.actor(), "incident.report").object("incident", id).detail("channel", channel);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Triage: the facts the APPI clock needs (the security office).
    pub async fn triage_incident(&self, p: &Principal, id: i64, t: Triage) -> Result<()> {
        self.require(p, Action::RegistersWrite).await?;
        let now = self.clock.now();
        let items = t.items.trim();
        let cause = t.cause.trim();
        if items.chars().count() > 500 || cause.chars().count() > 500 {
            return Err(CoreError::invalid("items", "at most 500 characters"));
        }
        let f = &t.facts;
        let mut tx = self.db.begin().await?;
        let n = sqlx::query(
            "UPDATE incidents SET items = $1, cause = $2, people = $3, sensitive = $4, financial_damage = $5, improper_purpose = $6, my_number = $7, \
             highly_encrypted = $8, processor = $9, state = 'triaged' WHERE id = $10 AND state <> 'closed'",
        )
        .bind(items)
        .bind(cause)
        .bind(i64::try_from(f.people).map_err(|_| CoreError::invalid("people", "too many"))?)
        .bind(i64::from(f.sensitive))
        .bind(i64::from(f.financial_damage))
        .bind(i64::from(f.improper_purpose))
        .bind(i64::from(f.my_number))
        .bind(i64::from(f.highly_encrypted))
        .bind(i64::from(f.processor))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(CoreError::NotFound("open incident"));
        }
        let grounds = super::appi::grounds(f);
        sqlx::query("INSERT INTO incident_timeline (incident_id, at, by_user, note) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(now.timestamp_millis())
            .bind(p.user_id)
            .bind(format!("トリアージ: 本人の数 {} / 報告対象 {}", f.people, if grounds.is_empty() { "非該当" } else { "該当" }))
            .execute(&mut *tx)
            .await?;
        let ev = Event::new(now, p.actor(), "incident.triage").object("incident", id).detail("reportable", !grounds.is_empty());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_incidents(&self, p: &Principal) -> Result<Vec<IncidentRow>> {
        self.require(p, Action::RegistersRead).await?;
        let rows: Vec<Row> = sqlx::query_as(&format!("SELECT {COLS} FROM incidents ORDER BY id DESC LIMIT 500")).fetch_all(&self.db.pool).await?;
        Ok(rows.into_iter().map(row).collect())
    }

    /// An incident with its APPI clock, the draft report and the timeline.
    pub async fn incident(&self, p: &Principal, id: i64) -> Result<IncidentView> {
        self.require(p, Action::RegistersRead).await?;
        let r: Option<Row> = sqlx::query_as(&format!("SELECT {COLS} FROM incidents WHERE id = $1")).bind(id).fetch_optional(&self.db.pool).await?;
        let incident = row(r.ok_or(CoreError::NotFound("incident"))?);
        let known = DateTime::from_timestamp_millis(incident.known_at).unwrap_or_default();
        let timeline: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT t.at, u.login, t.note FROM incident_timeline t JOIN users u ON u.id = t.by_user WHERE t.incident_id = $1 ORDER BY t.id",
        )
        .bind(id)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(IncidentView {
            clock: clock(&incident.facts, known),
            draft: draft_report(&incident.facts, &incident.summary, &incident.items, &incident.cause),
            incident,
            timeline,
        })
    }
}
