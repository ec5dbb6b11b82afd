//! The door services on [`Mamori`]: configuration, credentials, approvals, decisions, agent
//! reports, alarms and occupancy.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use mamori_ledger::{Actor, Event};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use super::card::{palm_ref, CardFormat, CardNumber};
use super::rules::*;
use super::{AgentPush, AlarmKind};
use crate::auth::Principal;
use crate::error::{CoreError, Result};
use crate::policy::Action;
use crate::types::{Code, Date, PersonKind, Text};
use crate::Mamori;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDoor {
    pub code: Code,
    pub name: Text,
    /// The zone on the outer side; none: outside the site.
    #[serde(default)]
    pub outside: Option<Code>,
    pub inside: Code,
    #[serde(default)]
    pub held_open_secs: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReader {
    pub code: Code,
    pub door: Code,
    pub direction: Direction,
    pub mode: ReaderMode,
    #[serde(default)]
    pub osdp_address: Option<u8>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCabinet {
    pub code: Code,
    pub name: Text,
    pub zone: Code,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLevel {
    pub code: Code,
    pub name: Text,
    pub zones: Vec<Code>,
    /// People of this position (職位) get the level; empty: any.
    #[serde(default)]
    pub position: Option<String>,
    /// People with this duty (担務) among their duties get the level; empty: any.
    #[serde(default)]
    pub duty: Option<String>,
    /// ISO weekdays, Monday = 1; default all.
    #[serde(default)]
    pub days: Option<String>,
    /// "HH:MM", Japan time; default 00:00 to 24:00.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub on_holidays: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneApb {
    pub mode: ApbMode,
    #[serde(default)]
    pub reset_minutes: Option<i64>,
}

/// A credential to issue: a card, a palm-vein enrolment reference, or a PIN.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    pub employee_no: Code,
    pub kind: String,
    pub number: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DoorRow {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub outside: Option<String>,
    pub inside: String,
    pub held_open_secs: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReaderRow {
    pub id: i64,
    pub code: String,
    pub door: String,
    pub direction: Direction,
    pub mode: ReaderMode,
    pub osdp_address: i64,
    pub online: bool,
    pub last_seen_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CabinetRow {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub zone: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LevelRow {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub zones: Vec<String>,
    pub position: String,
    pub duty: String,
    pub days: String,
    pub from: String,
    pub to: String,
    pub on_holidays: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CredentialRow {
    pub id: i64,
    pub employee_no: String,
    pub person_name: String,
    pub kind: String,
    /// The card number; `****` for PINs and palm references.
    pub number: String,
    pub status: String,
    pub issued_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlarmRow {
    pub id: i64,
    pub kind: String,
    pub door: Option<String>,
    pub reader: Option<String>,
    pub person: Option<i64>,
    pub person_name: Option<String>,
    pub raised_at: i64,
    pub detail: String,
    pub acked_at: Option<i64>,
    pub acked_by: Option<String>,
    pub ack_comment: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OccupantRow {
    pub person_id: i64,
    pub employee_no: String,
    pub name: String,
    pub kind: PersonKind,
    pub zone: String,
    pub zone_name: String,
    pub since: i64,
    pub door: Option<String>,
}

/// A decision asked by an agent (online).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    #[serde(default)]
    pub reader: Option<String>,
    #[serde(default)]
    pub cabinet: Option<String>,
    #[serde(flatten)]
    pub presented: Presented,
}

#[derive(Debug, Clone, Serialize)]
pub struct DecideResponse {
    #[serde(flatten)]
    pub decision: DoorDecision,
    /// Index of the decision's event in the centre's log.
    pub seq: u64,
}

/// What an agent reports after the fact.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentReport {
    /// A decision the agent took offline from its cached rules.
    OfflineDecision { at: DateTime<Utc>, decision: DoorDecision },
    /// Door sensor: opened with a grant, closed, forced open, held open.
    Door { at: DateTime<Utc>, door: String, state: String },
    /// People counted through a door by its sensor or a people counter (PHY-8).
    Passage { at: DateTime<Utc>, door: String, count: u32 },
    /// Reader supervision: online, offline, tamper.
    Reader { at: DateTime<Utc>, reader: String, state: String },
    /// A cabinet opened or closed (PHY-6).
    Cabinet { at: DateTime<Utc>, cabinet: String, state: String, #[serde(default)] person: Option<i64> },
}

fn hhmm(field: &str, s: &Option<String>, default: u32) -> Result<u32> {
    let Some(s) = s.as_deref().map(str::trim).filter(|s| !s.is_empty()) else { return Ok(default) };
    let (h, m) = s.split_once(':').ok_or_else(|| CoreError::invalid(field, "must be HH:MM"))?;
    let h: u32 = h.parse().map_err(|_| CoreError::invalid(field, "must be HH:MM"))?;
    let m: u32 = m.parse().map_err(|_| CoreError::invalid(field, "must be HH:MM"))?;
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err(CoreError::invalid(field, "must be between 00:00 and 24:00"));
    }
    Ok(h * 60 + m)
}

fn fmt_hhmm(m: u32) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

use crate::directory::opt_text as short_text;

pub(crate) async fn id_of(conn: &mut AnyConnection, table: &'static str, field: &str, code: &str) -> Result<i64> {
    // `table` is one of our own constants, never input.
    let row: Option<(i64,)> = sqlx::query_as(&format!("SELECT id FROM {table} WHERE code = $1"))
        .bind(code)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| r.0).ok_or_else(|| CoreError::invalid(field, format!("no such {field}: {code}")))
}

pub async fn person_id(conn: &mut AnyConnection, employee_no: &str) -> Result<i64> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM people WHERE employee_no = $1").bind(employee_no).fetch_optional(&mut *conn).await?;
    row.map(|r| r.0).ok_or_else(|| CoreError::invalid("employee_no", format!("no such person: {employee_no}")))
}

fn person_actor(person: Option<i64>, reader: &str) -> Actor {
    match person {
        Some(p) => Actor { kind: "person".into(), id: p.to_string() },
        None => Actor { kind: "device".into(), id: format!("reader:{reader}") },
    }
}

fn date_of(s: Option<String>) -> Option<NaiveDate> {
    s.and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
}

fn duties_match(duties: &str, duty: &str) -> bool {
    duties.split([',', '、', '/', ' ', '，', '・']).map(str::trim).any(|d| d == duty)
}

impl Mamori {
    // ---- rules --------------------------------------------------------------------------

    /// Rebuilds the live rules from the store and tells agents. Called after every change.
    pub async fn reload_door_rules(&self) -> Result<u64> {
        let _g = self.doors.rebuild.lock().await;
        let version = self.doors.rules().version + 1;
        let mut r = self.load_rules().await?;
        r.version = version;
        r.built_at_ms = self.clock.now().timestamp_millis();
        self.doors.set_rules(r);
        self.doors.send(AgentPush::Rules { version });
        Ok(version)
    }

    async fn load_rules(&self) -> Result<Rules> {
        let pool = &self.db.pool;
        let mut r = Rules::default();
        let zones: Vec<(i64, String, String, String, i64)> =
            sqlx::query_as("SELECT id, code, level, apb_mode, apb_reset_minutes FROM zones").fetch_all(pool).await?;
        for (id, code, level, apb, reset) in zones {
            r.zones.insert(id, ZoneInfo { code, level: level.parse()?, apb: apb.parse()?, apb_reset_minutes: reset });
        }
        let doors: Vec<(i64, String, Option<i64>, i64, i64)> =
            sqlx::query_as("SELECT id, code, outside_zone_id, inside_zone_id, held_open_secs FROM doors").fetch_all(pool).await?;
        for (id, code, outside, inside, held) in doors {
            r.doors.insert(id, DoorInfo { id, code, outside: outside.unwrap_or(OUTSIDE), inside, held_open_secs: held });
        }
        let readers: Vec<(i64, String, i64, String, String, i64)> =
            sqlx::query_as("SELECT id, code, door_id, direction, mode, osdp_address FROM readers").fetch_all(pool).await?;
        for (id, code, door, dir, mode, addr) in readers {
            r.readers.insert(
                code.clone(),
                ReaderInfo { id, code, door, direction: dir.parse()?, mode: mode.parse()?, osdp_address: addr.clamp(0, 126) as u8 },
            );
        }
        let cabinets: Vec<(i64, String, i64)> = sqlx::query_as("SELECT id, code, zone_id FROM cabinets").fetch_all(pool).await?;
        for (id, code, zone) in cabinets {
            r.cabinets.insert(code.clone(), CabinetInfo { id, code, zone });
        }
        let people: Vec<(i64, String, String, Option<String>, Option<String>, String, String)> =
            sqlx::query_as("SELECT id, kind, status, start_date, end_date, position, duties FROM people").fetch_all(pool).await?;
        let levels: Vec<(i64, String, String, String, String, String, String, i64)> = sqlx::query_as(
            "SELECT id, code, position, duty, days, time_from, time_to, on_holidays FROM access_levels ORDER BY id",
        )
        .fetch_all(pool)
        .await?;
        let level_zones: Vec<(i64, i64)> = sqlx::query_as("SELECT level_id, zone_id FROM access_level_zones").fetch_all(pool).await?;
        let mut level_index = HashMap::new();
        for (i, (id, code, _, _, days, from, to, hol)) in levels.iter().enumerate() {
            level_index.insert(*id, i);
            r.levels.push(LevelInfo {
                code: code.clone(),
                zones: level_zones.iter().filter(|(l, _)| l == id).map(|(_, z)| *z).collect(),
                days: days.clone(),
                from_min: hhmm("from", &Some(from.clone()), 0)?,
                to_min: hhmm("to", &Some(to.clone()), 1440)?,
                on_holidays: *hol != 0,
            });
        }
        for (id, kind, status, start, end, position, duties) in people {
            let mut info = PersonInfo {
                visitor: kind == PersonKind::Visitor.as_str(),
                status_active: status == "active",
                start: date_of(start),
                end: date_of(end),
                ..PersonInfo::default()
            };
            for (i, (_, _, lp, ld, ..)) in levels.iter().enumerate() {
                if (lp.is_empty() && ld.is_empty()) || info.visitor {
                    continue;
                }
                if (lp.is_empty() || *lp == position) && (ld.is_empty() || duties_match(&duties, ld)) {
                    info.levels.push(i);
                }
            }
            r.people.insert(id, info);
        }
        let direct: Vec<(i64, i64)> = sqlx::query_as("SELECT person_id, level_id FROM person_levels").fetch_all(pool).await?;
        for (p, l) in direct {
            if let (Some(info), Some(i)) = (r.people.get_mut(&p), level_index.get(&l)) {
                if !info.levels.contains(i) {
                    info.levels.push(*i);
                }
            }
        }
        let approvals: Vec<(i64, i64, Option<String>)> =
            sqlx::query_as("SELECT person_id, zone_id, until_date FROM zone_approvals WHERE revoked_at IS NULL").fetch_all(pool).await?;
        for (p, z, until) in approvals {
            if let Some(info) = r.people.get_mut(&p) {
                info.approvals.push((z, date_of(until)));
            }
        }
        // Inactive cards first, so that an active card with the same number wins.
        let creds: Vec<(i64, i64, String, String, String)> = sqlx::query_as(
            "SELECT id, person_id, kind, number, status FROM credentials ORDER BY CASE WHEN status = 'active' THEN 1 ELSE 0 END, id",
        )
        .fetch_all(pool)
        .await?;
        for (id, person, kind, number, status) in creds {
            let active = status == "active";
            match kind.as_str() {
                "palm" if active => {
                    if let Some(i) = r.people.get_mut(&person) {
                        i.palms.push(number);
                    }
                }
                "pin" if active => {
                    if let Some(i) = r.people.get_mut(&person) {
                        i.pin_hash = Some(number);
                    }
                }
                "palm" | "pin" => {}
                k => {
                    r.cards.insert(format!("{k}:{number}"), CardInfo { person, credential: id, active });
                }
            }
        }
        let visits: Vec<(i64, i64, i64, String, i64, i64)> = sqlx::query_as(
            "SELECT id, visitor_id, host_id, zones, expected_from, expected_to FROM visits \
             WHERE checked_out_at IS NULL AND credential_id IS NOT NULL",
        )
        .fetch_all(pool)
        .await?;
        for (id, visitor, host, zones, from_ms, to_ms) in visits {
            let zones = zones.split(',').filter_map(|z| z.parse().ok()).collect();
            if let Some(i) = r.people.get_mut(&visitor) {
                i.visit = Some(VisitInfo { id, host, zones, from_ms, to_ms });
            }
        }
        let hol: Vec<(String,)> = sqlx::query_as("SELECT day FROM holidays").fetch_all(pool).await?;
        r.holidays = hol.into_iter().filter_map(|(d,)| date_of(Some(d))).collect::<BTreeSet<_>>();
        Ok(r)
    }

    // ---- configuration --------------------------------------------------------------------

    pub async fn set_zone_apb(&self, p: &Principal, zone: &str, a: ZoneApb) -> Result<()> {
        self.require(p, Action::DoorsWrite).await?;
        let reset = a.reset_minutes.unwrap_or(0);
        if !(0..=7 * 24 * 60).contains(&reset) {
            return Err(CoreError::invalid("reset_minutes", "must be 0 to 10080 minutes"));
        }
        let mut tx = self.db.begin().await?;
        let n = sqlx::query("UPDATE zones SET apb_mode = $1, apb_reset_minutes = $2 WHERE code = $3")
            .bind(a.mode.as_str())
            .bind(reset)
            .bind(zone)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(CoreError::NotFound("zone"));
        }
        let ev = Event::new(self.clock.now(), p.actor(), "zone.anti_passback")
            .object("zone", zone)
            .detail("mode", a.mode)
            .detail("reset_minutes", reset);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        self.reload_door_rules().await?;
        Ok(())
    }

    pub async fn create_door(&self, p: &Principal, d: NewDoor) -> Result<i64> {
        self.require(p, Action::DoorsWrite).await?;
        let held = d.held_open_secs.unwrap_or(30);
        if !(1..=3600).contains(&held) {
            return Err(CoreError::invalid("held_open_secs", "must be 1 to 3600 seconds"));
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let inside = id_of(&mut tx, "zones", "inside", d.inside.as_str()).await?;
        let outside = match &d.outside {
            Some(c) => Some(id_of(&mut tx, "zones", "outside", c.as_str()).await?),
            None => None,
        };
        if outside == Some(inside) {
            return Err(CoreError::invalid("outside", "a door joins two different zones"));
        }
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO doors (code, name, outside_zone_id, inside_zone_id, held_open_secs, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(d.code.as_str())
        .bind(d.name.as_str())
        .bind(outside)
        .bind(inside)
        .bind(held)
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| CoreError::from_db_unique(e, "door code"))?;
        let ev = Event::new(now, p.actor(), "door.create").object("door", d.code.as_str()).place(Some(d.inside.as_str()), Some(d.code.as_str()), None);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        self.reload_door_rules().await?;
        Ok(id)
    }

    pub async fn create_reader(&self, p: &Principal, n: NewReader) -> Result<i64> {
        self.require(p, Action::DoorsWrite).await?;
        if n.osdp_address.is_some_and(|a| a > 126) {
            return Err(CoreError::invalid("osdp_address", "must be 0 to 126"));
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let door = id_of(&mut tx, "doors", "door", n.door.as_str()).await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO readers (code, door_id, direction, mode, osdp_address, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(n.code.as_str())
        .bind(door)
        .bind(n.direction.as_str())
        .bind(n.mode.as_str())
        .bind(i64::from(n.osdp_address.unwrap_or(0)))
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| CoreError::from_db_unique(e, "reader code"))?;
        let ev = Event::new(now, p.actor(), "reader.create")
            .object("reader", n.code.as_str())
            .place(None, Some(n.door.as_str()), Some(n.code.as_str()))
            .detail("direction", n.direction)
            .detail("mode", n.mode);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        self.reload_door_rules().await?;
        Ok(id)
    }

    pub async fn create_cabinet(&self, p: &Principal, n: NewCabinet) -> Result<i64> {
        self.require(p, Action::DoorsWrite).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let zone = id_of(&mut tx, "zones", "zone", n.zone.as_str()).await?;
        let (id,): (i64,) =
            sqlx::query_as("INSERT INTO cabinets (code, name, zone_id, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
                .bind(n.code.as_str())
                .bind(n.name.as_str())
                .bind(zone)
                .bind(now.timestamp_millis())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| CoreError::from_db_unique(e, "cabinet code"))?;
        let ev = Event::new(now, p.actor(), "cabinet.create").object("cabinet", n.code.as_str()).place(Some(n.zone.as_str()), None, None);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        self.reload_door_rules().await?;
        Ok(id)
    }

    pub async fn create_level(&self, p: &Principal, n: NewLevel) -> Result<i64> {
        self.require(p, Action::DoorsWrite).await?;
        if n.zones.is_empty() {
            return Err(CoreError::invalid("zones", "name at least one zone"));
        }
        let position = short_text("position", &n.position, 100)?;
        let duty = short_text("duty", &n.duty, 100)?;
        let days = n.days.clone().unwrap_or_else(|| "1234567".into());
        if days.is_empty() || !days.chars().all(|c| ('1'..='7').contains(&c)) {
            return Err(CoreError::invalid("days", "weekday digits 1 (Monday) to 7 (Sunday), e.g. 12345"));
        }
        let from = hhmm("from", &n.from, 0)?;
        let to = hhmm("to", &n.to, 1440)?;
        if from >= to {
            return Err(CoreError::invalid("to", "must be after the start time"));
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO access_levels (code, name, position, duty, days, time_from, time_to, on_holidays, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(n.code.as_str())
        .bind(n.name.as_str())
        .bind(&position)
        .bind(&duty)
        .bind(&days)
        .bind(fmt_hhmm(from))
        .bind(fmt_hhmm(to))
        .bind(i64::from(n.on_holidays.unwrap_or(false)))
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| CoreError::from_db_unique(e, "level code"))?;
        let mut codes = Vec::new();
        for z in &n.zones {
            let zid = id_of(&mut tx, "zones", "zones", z.as_str()).await?;
            sqlx::query("INSERT INTO access_level_zones (level_id, zone_id) VALUES ($1, $2)")
                .bind(id)
                .bind(zid)
                .execute(&mut *tx)
                .await
                .map_err(|e| CoreError::from_db_unique(e, "zones"))?;
            codes.push(z.as_str().to_owned());
        }
        let ev = Event::new(now, p.actor(), "access_level.create")
            .object("access_level", n.code.as_str())
            .detail("zones", codes.join(","))
            .detail("position", position)
            .detail("duty", duty)
            .detail("schedule", format!("{days} {}-{}", fmt_hhmm(from), fmt_hhmm(to)));
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        self.reload_door_rules().await?;
        Ok(id)
    }

    /// Gives a person a level directly, beyond those of their position and duties.
    pub async fn assign_level(&self, p: &Principal, employee_no: &str, level: &str) -> Result<()> {
        self.require(p, Action::DoorsWrite).await?;
        let mut tx = self.db.begin().await?;
        let person = person_id(&mut tx, employee_no).await?;
        let lid = id_of(&mut tx, "access_levels", "level", level).await?;
        sqlx::query("INSERT INTO person_levels (person_id, level_id) VALUES ($1, $2)")
            .bind(person)
            .bind(lid)
            .execute(&mut *tx)
            .await
            .map_err(|e| CoreError::from_db_unique(e, "assignment"))?;
        let ev = Event::new(self.clock.now(), p.actor(), "access_level.assign").object("person", person).detail("level", level);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        self.reload_door_rules().await?;
        Ok(())
    }

    pub async fn add_holiday(&self, p: &Principal, day: Date, name: Text) -> Result<()> {
        self.require(p, Action::DoorsWrite).await?;
        let mut tx = self.db.begin().await?;
        sqlx::query("INSERT INTO holidays (day, name) VALUES ($1, $2)")
            .bind(day.to_string())
            .bind(name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| CoreError::from_db_unique(e, "holiday"))?;
        let ev = Event::new(self.clock.now(), p.actor(), "holiday.create").object("holiday", day);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        self.reload_door_rules().await?;
        Ok(())
    }

    /// CISO approval of a person for a high-security zone (PHY-4).
    pub async fn approve_zone(&self, p: &Principal, employee_no: &str, zone: &str, until: Option<Date>) -> Result<i64> {
        self.require(p, Action::DoorsApprove).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let person = person_id(&mut tx, employee_no).await?;
        let own: Option<(Option<i64>,)> = sqlx::query_as("SELECT person_id FROM users WHERE id = $1").bind(p.user_id).fetch_optional(&mut *tx).await?;
        if own.and_then(|x| x.0) == Some(person) {
            return Err(CoreError::invalid("employee_no", "nobody approves their own entry (a second CISO or deputy must)"));
        }
        let zid = id_of(&mut tx, "zones", "zone", zone).await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO zone_approvals (person_id, zone_id, approved_by, approved_at, until_date) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(person)
        .bind(zid)
        .bind(p.user_id)
        .bind(now.timestamp_millis())
        .bind(until.map(|d| d.to_string()))
        .fetch_one(&mut *tx)
        .await?;
        let mut ev = Event::new(now, p.actor(), "zone.approve").object("person", person).place(Some(zone), None, None);
        if let Some(u) = until {
            ev = ev.detail("until", u);
        }
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        self.reload_door_rules().await?;
        Ok(id)
    }

    pub async fn list_doors(&self, p: &Principal) -> Result<Vec<DoorRow>> {
        self.require(p, Action::DoorsRead).await?;
        let rows: Vec<(i64, String, String, Option<String>, String, i64)> = sqlx::query_as(
            "SELECT d.id, d.code, d.name, o.code, i.code, d.held_open_secs FROM doors d \
             LEFT JOIN zones o ON o.id = d.outside_zone_id JOIN zones i ON i.id = d.inside_zone_id ORDER BY d.code",
        )
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, code, name, outside, inside, held_open_secs)| DoorRow { id, code, name, outside, inside, held_open_secs })
            .collect())
    }

    pub async fn list_readers(&self, p: &Principal) -> Result<Vec<ReaderRow>> {
        self.require(p, Action::DoorsRead).await?;
        let rows: Vec<(i64, String, String, String, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT r.id, r.code, d.code, r.direction, r.mode, r.osdp_address, r.online, r.last_seen_at FROM readers r \
             JOIN doors d ON d.id = r.door_id ORDER BY r.code",
        )
        .fetch_all(&self.db.pool)
        .await?;
        rows.into_iter()
            .map(|(id, code, door, dir, mode, osdp_address, online, last_seen_at)| {
                Ok(ReaderRow { id, code, door, direction: dir.parse()?, mode: mode.parse()?, osdp_address, online: online != 0, last_seen_at })
            })
            .collect()
    }

    pub async fn list_cabinets(&self, p: &Principal) -> Result<Vec<CabinetRow>> {
        self.require(p, Action::DoorsRead).await?;
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT c.id, c.code, c.name, z.code FROM cabinets c JOIN zones z ON z.id = c.zone_id ORDER BY c.code",
        )
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.into_iter().map(|(id, code, name, zone)| CabinetRow { id, code, name, zone }).collect())
    }

    pub async fn list_levels(&self, p: &Principal) -> Result<Vec<LevelRow>> {
        self.require(p, Action::DoorsRead).await?;
        let rows: Vec<(i64, String, String, String, String, String, String, String, i64)> = sqlx::query_as(
            "SELECT id, code, name, position, duty, days, time_from, time_to, on_holidays FROM access_levels ORDER BY code",
        )
        .fetch_all(&self.db.pool)
        .await?;
        let lz: Vec<(i64, String)> = sqlx::query_as(
            "SELECT lz.level_id, z.code FROM access_level_zones lz JOIN zones z ON z.id = lz.zone_id ORDER BY z.code",
        )
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, code, name, position, duty, days, from, to, hol)| LevelRow {
                id,
                code,
                name,
                zones: lz.iter().filter(|(l, _)| *l == id).map(|(_, z)| z.clone()).collect(),
                position,
                duty,
                days,
                from,
                to,
                on_holidays: hol != 0,
            })
            .collect())
    }

    // ---- credentials (PHY-2, PHY-7) ------------------------------------------------------

    /// Issues a credential. A new card replaces the person's other active cards (reissue
    /// invalidates the old card, PHY-2); a new palm reference or PIN replaces the old one.
    pub async fn issue_credential(&self, p: &Principal, n: NewCredential) -> Result<i64> {
        self.require(p, Action::DoorsCredentials).await?;
        let mut tx = self.db.begin().await?;
        let person = person_id(&mut tx, n.employee_no.as_str()).await?;
        let (id, replaced) = self.issue_in(&mut tx, p, person, &n.kind, &n.number).await?;
        tx.commit().await?;
        self.after_revocation(person, replaced).await?;
        Ok(id)
    }

    /// Issues in the caller's transaction; returns the new id and the keys of the cards it replaced.
    pub(crate) async fn issue_in(&self, conn: &mut AnyConnection, p: &Principal, person: i64, kind: &str, number: &str) -> Result<(i64, Vec<String>)> {
        let (kind, stored, family): (&str, String, Vec<&str>) = match kind {
            "palm" => ("palm", palm_ref(number)?, vec!["palm"]),
            "pin" => {
                if !(4..=8).contains(&number.len()) || !number.chars().all(|c| c.is_ascii_digit()) {
                    return Err(CoreError::invalid("number", "a PIN is 4 to 8 digits"));
                }
                ("pin", crate::auth::hash_secret(number)?, vec!["pin"])
            }
            k => {
                let c = CardNumber::parse(CardFormat::parse(k)?, number)?;
                (c.format().as_str(), c.number().to_owned(), vec!["felica", "mifare", "h10301"])
            }
        };
        let now = self.clock.now();
        let mut replaced = Vec::new();
        for f in &family {
            let old: Vec<(String, String)> = sqlx::query_as("SELECT kind, number FROM credentials WHERE person_id = $1 AND kind = $2 AND status = 'active'")
                .bind(person)
                .bind(*f)
                .fetch_all(&mut *conn)
                .await?;
            replaced.extend(old.into_iter().filter(|(k, _)| !matches!(k.as_str(), "palm" | "pin")).map(|(k, n)| format!("{k}:{n}")));
            sqlx::query(
                "UPDATE credentials SET status = 'replaced', ended_at = $1, end_reason = 'reissued' \
                 WHERE person_id = $2 AND kind = $3 AND status = 'active'",
            )
            .bind(now.timestamp_millis())
            .bind(person)
            .bind(*f)
            .execute(&mut *conn)
            .await?;
        }
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO credentials (person_id, kind, number, status, issued_at, issued_by) VALUES ($1, $2, $3, 'active', $4, $5) RETURNING id",
        )
        .bind(person)
        .bind(kind)
        .bind(&stored)
        .bind(now.timestamp_millis())
        .bind(p.user_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| CoreError::from_db_unique(e, "active credential with this number"))?;
        let ev = Event::new(now, p.actor(), "credential.issue").object("person", person).detail("credential", id).detail("kind", kind);
        self.ledger.append_tx(conn, &ev).await?;
        Ok((id, replaced))
    }

    /// Ends a credential: `returned` (card handed back), `lost` or `revoked`.
    pub async fn end_credential(&self, p: &Principal, id: i64, status: &str, reason: &str) -> Result<()> {
        self.require(p, Action::DoorsCredentials).await?;
        if !matches!(status, "returned" | "lost" | "revoked") {
            return Err(CoreError::invalid("status", "expected returned, lost or revoked"));
        }
        let reason = short_text("reason", &Some(reason.to_owned()), 200)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let row: Option<(i64, String, String)> =
            sqlx::query_as("SELECT person_id, kind, number FROM credentials WHERE id = $1 AND status = 'active'")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let (person, kind, number) = row.ok_or(CoreError::NotFound("active credential"))?;
        sqlx::query("UPDATE credentials SET status = $1, ended_at = $2, end_reason = $3 WHERE id = $4")
            .bind(status)
            .bind(now.timestamp_millis())
            .bind(&reason)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let ev = Event::new(now, p.actor(), &format!("credential.{status}")).object("person", person).detail("credential", id).detail("kind", &kind);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        let cards = if matches!(kind.as_str(), "palm" | "pin") { vec![] } else { vec![format!("{kind}:{number}")] };
        self.after_revocation(person, cards).await
    }

    /// Revokes every active credential of a person (leaving, transfer, suspension: PHY-7), in
    /// the caller's transaction; returns the card keys to push once it commits.
    pub(crate) async fn revoke_person_in(&self, conn: &mut AnyConnection, actor: Actor, person: i64, reason: &str) -> Result<Vec<String>> {
        let now = self.clock.now();
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT id, kind, number FROM credentials WHERE person_id = $1 AND status = 'active'")
                .bind(person)
                .fetch_all(&mut *conn)
                .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query("UPDATE credentials SET status = 'revoked', ended_at = $1, end_reason = $2 WHERE person_id = $3 AND status = 'active'")
            .bind(now.timestamp_millis())
            .bind(reason)
            .bind(person)
            .execute(&mut *conn)
            .await?;
        let ev = Event::new(now, actor, "credential.revoke_all")
            .object("person", person)
            .detail("count", rows.len())
            .detail("reason", reason);
        self.ledger.append_tx(conn, &ev).await?;
        Ok(rows.into_iter().filter(|(_, k, _)| !matches!(k.as_str(), "palm" | "pin")).map(|(_, k, n)| format!("{k}:{n}")).collect())
    }

    /// After a commit that ended credentials: push the cards to agents at once, then rebuild.
    pub(crate) async fn after_revocation(&self, person: i64, cards: Vec<String>) -> Result<()> {
        if !cards.is_empty() {
            // Refuse the cards here at once, tell the agents, then rebuild the rules.
            self.doors.revoke_now(&cards);
            let version = self.doors.rules().version;
            self.doors.send(AgentPush::Revoke { version, cards, person });
        }
        self.reload_door_rules().await?;
        Ok(())
    }

    pub async fn list_credentials(&self, p: &Principal, employee_no: Option<&str>) -> Result<Vec<CredentialRow>> {
        self.require(p, Action::DoorsRead).await?;
        let rows: Vec<(i64, String, String, String, String, String, i64, Option<i64>, String)> = sqlx::query_as(
            "SELECT c.id, pe.employee_no, pe.name, c.kind, c.number, c.status, c.issued_at, c.ended_at, c.end_reason \
             FROM credentials c JOIN people pe ON pe.id = c.person_id \
             WHERE ($1 = '' OR pe.employee_no = $1) ORDER BY c.id DESC LIMIT 1000",
        )
        .bind(employee_no.unwrap_or(""))
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, employee_no, person_name, kind, number, status, issued_at, ended_at, end_reason)| CredentialRow {
                id,
                employee_no,
                person_name,
                number: if matches!(kind.as_str(), "pin" | "palm") { "****".into() } else { number },
                kind,
                status,
                issued_at,
                ended_at,
                end_reason,
            })
            .collect())
    }

    // ---- decisions -----------------------------------------------------------------------

    /// Decides a presentation at a reader or cabinet, online: presence moves by
    /// compare-and-set, and the decision is durable in the ledger before it is returned.
    pub async fn door_decide(&self, p: &Principal, req: DecideRequest) -> Result<DecideResponse> {
        self.require(p, Action::DoorsAgent).await?;
        let (target, terminal) = match (&req.reader, &req.cabinet) {
            (Some(r), None) => (Target::Reader(r.as_str()), r.clone()),
            (None, Some(c)) => (Target::Cabinet(c.as_str()), c.clone()),
            _ => return Err(CoreError::invalid("reader", "name either a reader or a cabinet")),
        };
        for attempt in 0..8 {
            let rules = self.doors.rules();
            let now = self.clock.now();
            let now_ms = now.timestamp_millis();
            let card = match req.presented.card.as_ref().filter(|c| self.doors.is_revoked(c.key())) {
                Some(c) => Err(rules.revoked_decision(target, c.key())?),
                None => rules.identify(target, &req.presented)?,
            };
            let (decision, presence) = match card {
                Err(d) => (d, None),
                Ok(card) => {
                    let presence: Option<(i64, i64)> = sqlx::query_as("SELECT zone_id, since FROM presence WHERE person_id = $1")
                        .bind(card.person)
                        .fetch_optional(&self.db.pool)
                        .await?;
                    let door = match target {
                        Target::Reader(code) => rules.readers.get(code).map(|r| r.door),
                        Target::Cabinet(_) => None,
                    };
                    let host = rules.people.get(&card.person).and_then(|i| i.visit.as_ref()).map(|v| v.host);
                    let host_escorting = match (door, host) {
                        (Some(d), Some(h)) => self.doors.host_passed(d, h, now_ms),
                        _ => false,
                    };
                    let facts = Facts { presence, host_escorting };
                    (rules.decide(&self.doors.policy, target, &req.presented, &card, facts, now)?, presence)
                }
            };
            let mut tx = self.db.begin().await?;
            if decision.allowed && decision.moves {
                let person = decision.person.unwrap_or_default();
                let n = match presence {
                    Some((z, since)) => sqlx::query(
                        "UPDATE presence SET zone_id = $1, since = $2, door_id = $3 WHERE person_id = $4 AND zone_id = $5 AND since = $6",
                    )
                    .bind(decision.to_zone)
                    .bind(now_ms)
                    .bind(decision.door)
                    .bind(person)
                    .bind(z)
                    .bind(since)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    None => sqlx::query(
                        "INSERT INTO presence (person_id, zone_id, since, door_id) VALUES ($1, $2, $3, $4) ON CONFLICT (person_id) DO NOTHING",
                    )
                    .bind(person)
                    .bind(decision.to_zone)
                    .bind(now_ms)
                    .bind(decision.door)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                };
                if n != 1 {
                    // Someone else moved this person between our read and our write: decide again.
                    tx.rollback().await?;
                    tracing::debug!(attempt, "presence changed under a decision; deciding again");
                    continue;
                }
            }
            let seq = self.record_decision(&mut tx, &rules, &decision, &terminal, now, false, Some(p)).await?;
            tx.commit().await?;
            if decision.allowed {
                if let Some(door) = decision.door {
                    self.doors.note_grant(door, decision.person.unwrap_or_default(), now_ms);
                }
            }
            return Ok(DecideResponse { decision, seq });
        }
        Err(CoreError::Conflict("presence kept changing; try again".into()))
    }

    /// Appends a decision's event (and its alarms) in the caller's transaction.
    #[allow(clippy::too_many_arguments)]
    async fn record_decision(
        &self,
        conn: &mut AnyConnection,
        rules: &Rules,
        d: &DoorDecision,
        terminal: &str,
        at: DateTime<Utc>,
        offline: bool,
        agent: Option<&Principal>,
    ) -> Result<u64> {
        let zone = rules.zones.get(&d.to_zone).map(|z| z.code.as_str());
        let door = d.door.and_then(|x| rules.doors.get(&x)).map(|x| x.code.as_str());
        let action = if d.action.is_empty() { "door.present" } else { d.action.as_str() };
        let mut ev = Event::new(at, person_actor(d.person, terminal), action).place(zone, door, Some(terminal));
        ev = if d.allowed { ev.rule(&d.rule) } else { ev.denied(Some(&d.rule)) };
        if let Some(pid) = d.person {
            ev = ev.object("person", pid);
        }
        if let Some(c) = d.credential {
            ev = ev.detail("credential", c);
        }
        if offline {
            ev = ev.detail("offline", "true");
        }
        if d.apb_violation {
            ev = ev.detail("anti_passback", "violation");
        }
        if d.visitor {
            ev = ev.detail("visitor", "true");
        }
        if let Some(a) = agent {
            let who = a.actor();
            ev = ev.detail("agent", format!("{}:{}", who.kind, who.id));
        }
        let seq = self.ledger.append_tx(conn, &ev).await?;
        if d.apb_violation {
            self.raise_alarm_in(conn, AlarmKind::AntiPassback, d.door, d.reader, d.person, &format!("rule={}", d.rule), at).await?;
        }
        if !d.allowed {
            let key = d.credential.map_or_else(|| format!("reader:{terminal}"), |c| format!("cred:{c}"));
            if self.doors.note_denial(&key, at.timestamp_millis()) {
                self.raise_alarm_in(conn, AlarmKind::RepeatedDenials, d.door, d.reader, d.person, &format!("last rule={}", d.rule), at).await?;
            }
        }
        Ok(seq)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn raise_alarm_in(
        &self,
        conn: &mut AnyConnection,
        kind: AlarmKind,
        door: Option<i64>,
        reader: Option<i64>,
        person: Option<i64>,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<i64> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO alarms (kind, door_id, reader_id, person_id, raised_at, detail) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(kind.as_str())
        .bind(door)
        .bind(reader)
        .bind(person)
        .bind(at.timestamp_millis())
        .bind(detail)
        .fetch_one(&mut *conn)
        .await?;
        let rules = self.doors.rules();
        let door_code = door.and_then(|d| rules.doors.get(&d)).map(|d| d.code.as_str());
        let mut ev = Event::new(at, crate::auth::system_actor("doors"), "alarm.raise")
            .object("alarm", id)
            .place(None, door_code, None)
            .detail("kind", kind.as_str());
        if let Some(p) = person {
            ev = ev.detail("person", p);
        }
        self.ledger.append_tx(conn, &ev).await?;
        Ok(id)
    }

    /// Takes what an agent reports: offline decisions, door sensors, passages, reader state
    /// and cabinet open/close. All of a batch is recorded, or none.
    pub async fn door_report(&self, p: &Principal, reports: Vec<AgentReport>) -> Result<usize> {
        self.require(p, Action::DoorsAgent).await?;
        if reports.len() > 10_000 {
            return Err(CoreError::invalid("reports", "at most 10000 per batch"));
        }
        let rules = self.doors.rules();
        let mut tx = self.db.begin().await?;
        // Writes first, so that SQLite takes the write lock before any read.
        sqlx::query("UPDATE ledger_logs SET size = size WHERE id = 1").execute(&mut *tx).await?;
        for r in &reports {
            match r {
                AgentReport::OfflineDecision { at, decision } => {
                    let terminal = decision
                        .reader
                        .and_then(|id| rules.readers.values().find(|x| x.id == id))
                        .map(|x| x.code.clone())
                        .or_else(|| decision.cabinet.and_then(|id| rules.cabinets.values().find(|x| x.id == id)).map(|x| x.code.clone()))
                        .ok_or_else(|| CoreError::invalid("decision", "names no known reader or cabinet"))?;
                    if decision.allowed && decision.moves {
                        if let Some(person) = decision.person {
                            // An offline passage moves presence only if nothing newer was recorded.
                            sqlx::query(
                                "INSERT INTO presence (person_id, zone_id, since, door_id) VALUES ($1, $2, $3, $4) \
                                 ON CONFLICT (person_id) DO UPDATE SET zone_id = excluded.zone_id, since = excluded.since, door_id = excluded.door_id \
                                 WHERE presence.since < excluded.since",
                            )
                            .bind(person)
                            .bind(decision.to_zone)
                            .bind(at.timestamp_millis())
                            .bind(decision.door)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                    self.record_decision(&mut tx, &rules, decision, &terminal, *at, true, Some(p)).await?;
                }
                AgentReport::Door { at, door, state } => {
                    let d = rules.doors.values().find(|x| &x.code == door).ok_or(CoreError::NotFound("door"))?;
                    let kind = match state.as_str() {
                        "forced" => Some(AlarmKind::DoorForced),
                        "held_open" => Some(AlarmKind::DoorHeldOpen),
                        "opened" | "closed" => None,
                        _ => return Err(CoreError::invalid("state", "expected opened, closed, forced or held_open")),
                    };
                    let ev = Event::new(*at, Actor { kind: "device".into(), id: format!("door:{door}") }, &format!("door.{state}"))
                        .place(rules.zones.get(&d.inside).map(|z| z.code.as_str()), Some(door), None);
                    self.ledger.append_tx(&mut tx, &ev).await?;
                    if let Some(k) = kind {
                        self.raise_alarm_in(&mut tx, k, Some(d.id), None, None, state, *at).await?;
                    }
                }
                AgentReport::Passage { at, door, count } => {
                    let d = rules.doors.values().find(|x| &x.code == door).ok_or(CoreError::NotFound("door"))?;
                    let window = d.held_open_secs.max(10) * 1000;
                    let mut unmatched = 0;
                    for _ in 0..(*count).min(100) {
                        if !self.doors.consume_grant(d.id, at.timestamp_millis(), window) {
                            unmatched += 1;
                        }
                    }
                    let ev = Event::new(*at, Actor { kind: "device".into(), id: format!("door:{door}") }, "door.passage")
                        .place(rules.zones.get(&d.inside).map(|z| z.code.as_str()), Some(door), None)
                        .detail("count", count)
                        .detail("without_grant", unmatched);
                    self.ledger.append_tx(&mut tx, &ev).await?;
                    if unmatched > 0 {
                        let detail = format!("{count} passed, {unmatched} without a grant");
                        self.raise_alarm_in(&mut tx, AlarmKind::Tailgating, Some(d.id), None, None, &detail, *at).await?;
                    }
                }
                AgentReport::Reader { at, reader, state } => {
                    let rd = rules.readers.get(reader).ok_or(CoreError::NotFound("reader"))?;
                    let (online, alarm) = match state.as_str() {
                        "online" => (1, None),
                        "offline" => (0, Some(AlarmKind::ReaderOffline)),
                        "tamper" => (1, Some(AlarmKind::ReaderTamper)),
                        _ => return Err(CoreError::invalid("state", "expected online, offline or tamper")),
                    };
                    sqlx::query("UPDATE readers SET online = $1, last_seen_at = $2 WHERE id = $3")
                        .bind(online)
                        .bind(at.timestamp_millis())
                        .bind(rd.id)
                        .execute(&mut *tx)
                        .await?;
                    let door = rules.doors.get(&rd.door).map(|d| d.code.as_str());
                    let ev = Event::new(*at, Actor { kind: "device".into(), id: format!("reader:{reader}") }, &format!("reader.{state}"))
                        .place(None, door, Some(reader));
                    self.ledger.append_tx(&mut tx, &ev).await?;
                    if let Some(k) = alarm {
                        self.raise_alarm_in(&mut tx, k, Some(rd.door), Some(rd.id), None, state, *at).await?;
                    }
                }
                AgentReport::Cabinet { at, cabinet, state, person } => {
                    let c = rules.cabinets.get(cabinet).ok_or(CoreError::NotFound("cabinet"))?;
                    if !matches!(state.as_str(), "opened" | "closed") {
                        return Err(CoreError::invalid("state", "expected opened or closed"));
                    }
                    let actor = match person {
                        Some(pid) => Actor { kind: "person".into(), id: pid.to_string() },
                        None => Actor { kind: "device".into(), id: format!("cabinet:{cabinet}") },
                    };
                    let ev = Event::new(*at, actor, &format!("cabinet.{state}"))
                        .object("cabinet", cabinet)
                        .place(rules.zones.get(&c.zone).map(|z| z.code.as_str()), None, Some(cabinet));
                    self.ledger.append_tx(&mut tx, &ev).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(reports.len())
    }

    // ---- alarms, occupancy ---------------------------------------------------------------

    pub async fn list_alarms(&self, p: &Principal, open_only: bool) -> Result<Vec<AlarmRow>> {
        self.require(p, Action::DoorsMonitor).await?;
        let rows: Vec<(i64, String, Option<String>, Option<String>, Option<i64>, Option<String>, i64, String, Option<i64>, Option<String>, Option<String>)> =
            sqlx::query_as(
                "SELECT a.id, a.kind, d.code, r.code, a.person_id, pe.name, a.raised_at, a.detail, a.acked_at, u.login, a.ack_comment \
                 FROM alarms a LEFT JOIN doors d ON d.id = a.door_id LEFT JOIN readers r ON r.id = a.reader_id \
                 LEFT JOIN people pe ON pe.id = a.person_id LEFT JOIN users u ON u.id = a.acked_by \
                 WHERE ($1 = 0 OR a.acked_at IS NULL) ORDER BY a.id DESC LIMIT 500",
            )
            .bind(i64::from(open_only))
            .fetch_all(&self.db.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, kind, door, reader, person, person_name, raised_at, detail, acked_at, acked_by, ack_comment)| AlarmRow {
                id,
                kind,
                door,
                reader,
                person,
                person_name,
                raised_at,
                detail,
                acked_at,
                acked_by,
                ack_comment,
            })
            .collect())
    }

    /// Acknowledges an alarm; a comment is required.
    pub async fn ack_alarm(&self, p: &Principal, id: i64, comment: &str) -> Result<()> {
        self.require(p, Action::AlarmsAck).await?;
        let comment = comment.trim();
        if comment.is_empty() {
            return Err(CoreError::invalid("comment", "say what was found and done"));
        }
        if comment.chars().count() > 1000 {
            return Err(CoreError::invalid("comment", "must be at most 1000 characters"));
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let n = sqlx::query("UPDATE alarms SET acked_at = $1, acked_by = $2, ack_comment = $3 WHERE id = $4 AND acked_at IS NULL")
            .bind(now.timestamp_millis())
            .bind(p.user_id)
            .bind(comment)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(CoreError::NotFound("open alarm"));
        }
        let ev = Event::new(now, p.actor(), "alarm.ack").object("alarm", id).detail("comment_chars", comment.chars().count());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Who is inside which zone now (presence other than outside), by zone then name.
    pub async fn occupancy(&self, p: &Principal) -> Result<Vec<OccupantRow>> {
        self.require(p, Action::DoorsMonitor).await?;
        let rows: Vec<(i64, String, String, String, String, String, i64, Option<String>)> = sqlx::query_as(
            "SELECT pe.id, pe.employee_no, pe.name, pe.kind, z.code, z.name, pr.since, d.code FROM presence pr \
             JOIN people pe ON pe.id = pr.person_id JOIN zones z ON z.id = pr.zone_id LEFT JOIN doors d ON d.id = pr.door_id \
             ORDER BY z.code, pe.name",
        )
        .fetch_all(&self.db.pool)
        .await?;
        rows.into_iter()
            .map(|(person_id, employee_no, name, kind, zone, zone_name, since, door)| {
                Ok(OccupantRow { person_id, employee_no, name, kind: kind.parse()?, zone, zone_name, since, door })
            })
            .collect()
    }

    /// The muster list: everyone recorded inside the site, with the event recorded.
    pub async fn muster(&self, p: &Principal) -> Result<Vec<OccupantRow>> {
        let rows = self.occupancy(p).await?;
        let ev = Event::new(self.clock.now(), p.actor(), "muster.print").detail("people", rows.len());
        self.ledger.append(ev).await?;
        Ok(rows)
    }
}

impl Mamori {
    /// The live rules, for an agent's offline cache.
    pub async fn door_rules_for_agent(&self, p: &Principal) -> Result<std::sync::Arc<Rules>> {
        self.require(p, Action::DoorsAgent).await?;
        Ok(self.doors.rules())
    }

    /// Subscribes an agent to pushes (revocations, rule changes).
    pub async fn door_subscribe(&self, p: &Principal) -> Result<tokio::sync::broadcast::Receiver<AgentPush>> {
        self.require(p, Action::DoorsAgent).await?;
        Ok(self.doors.subscribe())
    }

    /// Background door jobs (unreturned visitor cards), every minute until `stop`.
    pub async fn run_door_jobs(self: std::sync::Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.check_visitor_cards().await {
                tracing::error!(error = %e, "visitor card check failed");
            }
            // Copies of customer data past their expiry are recorded as destroyed (LIFE-4).
            if let Err(e) = self.expire_copies().await {
                tracing::error!(error = %e, "copy expiry failed");
            }
            // The ISMS cycle: the month's tasks, overdue reminders, the mail outbox (MGMT-6).
            if let Err(e) = self.cycle_jobs().await {
                tracing::error!(error = %e, "ISMS cycle job failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
