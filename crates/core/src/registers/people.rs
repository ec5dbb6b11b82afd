//! People's records (HUMAN-1 to HUMAN-3): pledges (誓約書) signed in the console against a
//! versioned text at hire, yearly and at leaving, by employees and dispatched staff alike;
//! training courses with due rules and attendance with test scores; drill and survey results.
//! A person who owes a pledge or a required course is flagged on their page, and — when the
//! centre turns it on — cannot be granted access to customer data (DATA-2 grants).

use mamori_ledger::Event;
use serde::{Deserialize, Serialize};

use super::{long_text, one_of};
use crate::db::Arg;
use crate::auth::Principal;
use crate::error::{CoreError, Result};
use crate::policy::Action;
use crate::types::{Code, Role, Text};
use crate::Mamori;

const DAY: i64 = 86_400_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPledgeText {
    /// `hire`, `yearly` or `leaving`.
    pub kind: String,
    pub body: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PledgeText {
    pub id: i64,
    pub kind: String,
    pub version: i64,
    pub body: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCourse {
    pub code: Code,
    pub title: Text,
    /// `hire`, `yearly`, `half_yearly` or `monthly`.
    pub due_rule: String,
    /// Only people whose account has this role must take it (None: everyone).
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub pass_score: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CourseRow {
    pub code: String,
    pub title: String,
    pub due_rule: String,
    pub role: Option<String>,
    pub pass_score: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAttendance {
    pub course: String,
    pub employee_no: String,
    #[serde(default)]
    pub score: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDrill {
    /// `phishing`, `exercise` or `survey`.
    pub kind: String,
    pub name: Text,
    pub employee_no: String,
    /// e.g. `opened`, `reported`, `clicked`, or a survey score.
    pub result: Text,
}

/// What a person owes (HUMAN-1, HUMAN-2).
#[derive(Debug, Clone, Serialize)]
pub struct PersonFlags {
    pub person_id: i64,
    pub employee_no: String,
    pub name: String,
    pub kind: String,
    pub last_pledge_at: Option<i64>,
    /// No hire pledge, or none (hire or yearly) within a year.
    pub pledge_due: bool,
    /// The pledge kind to sign next (`hire` or `yearly`), or `leaving` for a leaver who has not.
    pub pledge_next: Option<String>,
    /// Courses due (their codes).
    pub courses_due: Vec<String>,
    pub training_due: bool,
    pub flagged: bool,
}

/// One person's records: what they owe and what they did.
#[derive(Debug, Clone, Serialize)]
pub struct PersonRecord {
    pub flags: PersonFlags,
    /// (kind, version, signed at ms)
    pub pledges: Vec<(String, i64, i64)>,
    /// (course code, title, attended at ms, score, passed)
    pub attendances: Vec<(String, String, i64, Option<i64>, bool)>,
    /// (kind, name, held at ms, result)
    pub drills: Vec<(String, String, i64, String)>,
}

async fn person_by_no(tx: &mut sqlx::AnyConnection, no: &str) -> Result<i64> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM people WHERE employee_no = $1").bind(no.trim()).fetch_optional(&mut *tx).await?;
    row.map(|r| r.0).ok_or_else(|| CoreError::invalid("employee_no", "no such person"))
}

impl Mamori {
    /// A new version of a pledge text (the secretariat keeps them).
    pub async fn add_pledge_text(&self, p: &Principal, t: NewPledgeText) -> Result<i64> {
        self.require(p, Action::RegistersWrite).await?;
        let kind = one_of("kind", &t.kind, &["hire", "yearly", "leaving"])?;
        let body = long_text("body", &t.body, 20_000)?;
        if body.is_empty() {
            return Err(CoreError::invalid("body", "the pledge's text"));
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (v,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(version), 0) + 1 FROM pledge_texts WHERE kind = $1").bind(kind).fetch_one(&mut *tx).await?;
        sqlx::query("INSERT INTO pledge_texts (kind, version, body, created_by, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(kind)
            .bind(v)
            .bind(&body)
            .bind(p.user_id)
            .bind(now.timestamp_millis())
            .execute(&mut *tx)
            .await?;
        let ev = Event::new(now, p.actor(), "pledge.text").object("pledge_text", format!("{kind}-v{v}"));
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(v)
    }

    /// The text a person signs now for `kind` (the newest version).
    pub async fn pledge_text(&self, kind: &str) -> Result<Option<PledgeText>> {
        let row: Option<(i64, String, i64, String)> =
            sqlx::query_as("SELECT id, kind, version, body FROM pledge_texts WHERE kind = $1 ORDER BY version DESC LIMIT 1").bind(kind).fetch_optional(&self.db.pool).await?;
        Ok(row.map(|(id, kind, version, body)| PledgeText { id, kind, version, body }))
    }

    /// The signed-in person signs the current text of `kind` (their own pledge only; the
    /// account must be linked to a person of the directory).
    pub async fn sign_pledge(&self, p: &Principal, kind: &str, version: i64) -> Result<()> {
        self.require(p, Action::PledgesSign).await?;
        let kind = one_of("kind", kind, &["hire", "yearly", "leaving"])?;
        let current = self.pledge_text(kind).await?.ok_or(CoreError::NotFound("pledge text"))?;
        if current.version != version {
            return Err(CoreError::Conflict("the pledge text has a newer version: read it again".into()));
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let person: Option<(Option<i64>,)> = sqlx::query_as("SELECT person_id FROM users WHERE id = $1").bind(p.user_id).fetch_optional(&mut *tx).await?;
        let Some(person) = person.and_then(|r| r.0) else {
            return Err(CoreError::invalid("person", "this account is not linked to a person of the directory"));
        };
        sqlx::query("INSERT INTO pledges (person_id, text_id, signed_by, signed_at) VALUES ($1, $2, $3, $4)")
            .bind(person)
            .bind(current.id)
            .bind(p.user_id)
            .bind(now.timestamp_millis())
            .execute(&mut *tx)
            .await?;
        let ev = Event::new(now, p.actor(), "pledge.sign").object("person", person).detail("kind", kind).detail("version", version);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn add_course(&self, p: &Principal, c: NewCourse) -> Result<()> {
        self.require(p, Action::RegistersWrite).await?;
        let rule = one_of("due_rule", &c.due_rule, &["hire", "yearly", "half_yearly", "monthly"])?;
        if c.pass_score.is_some_and(|s| !(0..=100).contains(&s)) {
            return Err(CoreError::invalid("pass_score", "0 to 100"));
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        sqlx::query("INSERT INTO courses (code, title, due_rule, role, pass_score, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(c.code.as_str())
            .bind(c.title.as_str())
            .bind(rule)
            .bind(c.role.map(|r| r.as_str()))
            .bind(c.pass_score)
            .bind(now.timestamp_millis())
            .execute(&mut *tx)
            .await
            .map_err(|e| CoreError::from_db_unique(e, "course"))?;
        let ev = Event::new(now, p.actor(), "course.create").object("course", c.code.as_str()).detail("due_rule", rule);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_courses(&self, p: &Principal) -> Result<Vec<CourseRow>> {
        self.require(p, Action::RegistersRead).await?;
        let rows: Vec<(String, String, String, Option<String>, Option<i64>)> =
            sqlx::query_as("SELECT code, title, due_rule, role, pass_score FROM courses ORDER BY code").fetch_all(&self.db.pool).await?;
        Ok(rows.into_iter().map(|(code, title, due_rule, role, pass_score)| CourseRow { code, title, due_rule, role, pass_score }).collect())
    }

    /// Records that a person attended a course (with the test score, when it has a test).
    pub async fn record_attendance(&self, p: &Principal, a: NewAttendance) -> Result<bool> {
        self.require(p, Action::RegistersWrite).await?;
        if a.score.is_some_and(|s| !(0..=100).contains(&s)) {
            return Err(CoreError::invalid("score", "0 to 100"));
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let course: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT id, pass_score FROM courses WHERE code = $1").bind(a.course.trim()).fetch_optional(&mut *tx).await?;
        let (cid, pass) = course.ok_or_else(|| CoreError::invalid("course", "no such course"))?;
        let person = person_by_no(&mut tx, &a.employee_no).await?;
        let passed = match (pass, a.score) {
            (Some(need), Some(got)) => got >= need,
            (Some(_), None) => return Err(CoreError::invalid("score", "this course has a test: give the score")),
            (None, _) => true,
        };
        sqlx::query("INSERT INTO attendances (course_id, person_id, attended_at, score, passed, recorded_by) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(cid)
            .bind(person)
            .bind(now.timestamp_millis())
            .bind(a.score)
            .bind(i64::from(passed))
            .bind(p.user_id)
            .execute(&mut *tx)
            .await?;
        let mut ev = Event::new(now, p.actor(), "training.attend").object("person", person).detail("course", a.course.trim()).detail("passed", passed);
        if let Some(s) = a.score {
            ev = ev.detail("score", s);
        }
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(passed)
    }

    pub async fn record_drill(&self, p: &Principal, d: NewDrill) -> Result<()> {
        self.require(p, Action::RegistersWrite).await?;
        let kind = one_of("kind", &d.kind, &["phishing", "exercise", "survey"])?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let person = person_by_no(&mut tx, &d.employee_no).await?;
        sqlx::query("INSERT INTO drills (kind, name, person_id, held_at, result, recorded_by) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(kind)
            .bind(d.name.as_str())
            .bind(person)
            .bind(now.timestamp_millis())
            .bind(d.result.as_str())
            .bind(p.user_id)
            .execute(&mut *tx)
            .await?;
        let ev = Event::new(now, p.actor(), "drill.record").object("person", person).detail("kind", kind).detail("name", d.name.as_str());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The flags of one person (what they owe now).
    pub async fn person_flags(&self, person: i64) -> Result<PersonFlags> {
        self.flags_of(Some(person)).await?.pop().ok_or(CoreError::NotFound("person"))
    }

    /// The flags of one person, or of every active member of staff (visitors excluded), from
    /// five queries however many people and courses there are.
    async fn flags_of(&self, person: Option<i64>) -> Result<Vec<PersonFlags>> {
        let now = self.clock.now().timestamp_millis();
        // 0: everyone; else that person only.
        let only = person.unwrap_or(0);
        let people: Vec<(i64, String, String, String, String, Option<String>)> = match person {
            Some(id) => self.db.read("SELECT id, employee_no, name, kind, status, end_date FROM people WHERE id = $1", &[Arg::Int(id)]).await?,
            None => {
                self.db
                    .read("SELECT id, employee_no, name, kind, status, end_date FROM people WHERE status = 'active' AND kind <> 'visitor' ORDER BY employee_no", &[])
                    .await?
            }
        };
        let only = [Arg::Int(only), Arg::Int(only)];
        let pledges: Vec<(i64, String, i64)> = self
            .db
            .read("SELECT p.person_id, t.kind, p.signed_at FROM pledges p JOIN pledge_texts t ON t.id = p.text_id WHERE $1 = 0 OR p.person_id = $2", &only)
            .await?;
        // Roles of the accounts linked to each person: role-specific courses apply to them.
        let roles: Vec<(i64, String)> = self
            .db
            .read(
                "SELECT u.person_id, r.role FROM role_assignments r JOIN users u ON u.id = r.user_id WHERE u.person_id IS NOT NULL AND ($1 = 0 OR u.person_id = $2)",
                &only,
            )
            .await?;
        let courses: Vec<(i64, String, String, Option<String>)> = self.db.read("SELECT id, code, due_rule, role FROM courses ORDER BY code", &[]).await?;
        let passed: Vec<(i64, i64, i64)> = self
            .db
            .read(
                "SELECT person_id, course_id, MAX(attended_at) FROM attendances WHERE passed = 1 AND ($1 = 0 OR person_id = $2) GROUP BY person_id, course_id",
                &only,
            )
            .await?;
        Ok(people
            .into_iter()
            .map(|(id, no, name, kind, status, end_date)| {
                let mine: Vec<(&str, i64)> = pledges.iter().filter(|(p, ..)| *p == id).map(|(_, k, at)| (k.as_str(), *at)).collect();
                let hire = mine.iter().any(|(k, _)| *k == "hire");
                let last = mine.iter().filter(|(k, _)| matches!(*k, "hire" | "yearly")).map(|(_, at)| *at).max();
                let leaving = mine.iter().any(|(k, _)| *k == "leaving");
                let yearly_ok = last.is_some_and(|at| now - at < 365 * DAY);
                // A leaving date set: the pledge at leaving is owed before the last day.
                let leaving_due = !leaving && (status == "left" || end_date.as_deref().is_some_and(|d| !d.is_empty()));
                let pledge_next = if status == "left" {
                    leaving_due.then(|| "leaving".to_owned())
                } else if !hire {
                    Some("hire".to_owned())
                } else if !yearly_ok {
                    Some("yearly".to_owned())
                } else if leaving_due {
                    Some("leaving".to_owned())
                } else {
                    None
                };
                let pledge_due = status != "left" && pledge_next.is_some();
                let mut due = Vec::new();
                if status == "active" {
                    for (cid, code, rule, role) in &courses {
                        if role.as_ref().is_some_and(|r| !roles.iter().any(|(p, x)| *p == id && x == r)) {
                            continue;
                        }
                        let last = passed.iter().find(|(p, c, _)| *p == id && c == cid).map(|x| x.2);
                        let window = match rule.as_str() {
                            "hire" => None,
                            "yearly" => Some(365 * DAY),
                            "half_yearly" => Some(183 * DAY),
                            _ => Some(31 * DAY),
                        };
                        let ok = match (last, window) {
                            (None, _) => false,
                            (Some(_), None) => true,
                            (Some(at), Some(w)) => now - at < w,
                        };
                        if !ok {
                            due.push(code.clone());
                        }
                    }
                }
                let training_due = !due.is_empty();
                PersonFlags {
                    person_id: id,
                    employee_no: no,
                    name,
                    kind,
                    last_pledge_at: last,
                    pledge_due,
                    pledge_next,
                    flagged: pledge_due || training_due,
                    courses_due: due,
                    training_due,
                }
            })
            .collect())
    }

    /// A person's page: flags and the history of pledges, training and drills.
    pub async fn person_record(&self, p: &Principal, employee_no: &str) -> Result<PersonRecord> {
        self.require(p, Action::RegistersRead).await?;
        let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM people WHERE employee_no = $1").bind(employee_no).fetch_optional(&self.db.pool).await?;
        let (id,) = row.ok_or(CoreError::NotFound("person"))?;
        let flags = self.person_flags(id).await?;
        let pledges: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT t.kind, t.version, p.signed_at FROM pledges p JOIN pledge_texts t ON t.id = p.text_id WHERE p.person_id = $1 ORDER BY p.signed_at DESC",
        )
        .bind(id)
        .fetch_all(&self.db.pool)
        .await?;
        let att: Vec<(String, String, i64, Option<i64>, i64)> = sqlx::query_as(
            "SELECT c.code, c.title, a.attended_at, a.score, a.passed FROM attendances a JOIN courses c ON c.id = a.course_id WHERE a.person_id = $1 ORDER BY a.attended_at DESC",
        )
        .bind(id)
        .fetch_all(&self.db.pool)
        .await?;
        let drills: Vec<(String, String, i64, String)> =
            sqlx::query_as("SELECT kind, name, held_at, result FROM drills WHERE person_id = $1 ORDER BY held_at DESC").bind(id).fetch_all(&self.db.pool).await?;
        Ok(PersonRecord { flags, pledges, attendances: att.into_iter().map(|(c, t, at, s, ok)| (c, t, at, s, ok != 0)).collect(), drills })
    }

    /// Flags of every active member of staff (visitors excluded).
    pub async fn people_flags_all(&self) -> Result<Vec<PersonFlags>> {
        self.flags_of(None).await
    }

    /// The people's records register: everyone's flags.
    pub async fn list_people_flags(&self, p: &Principal) -> Result<Vec<PersonFlags>> {
        self.require(p, Action::RegistersRead).await?;
        self.people_flags_all().await
    }

    /// The flags of the signed-in person (their own page), if the account is linked.
    pub async fn my_flags(&self, p: &Principal) -> Result<Option<PersonFlags>> {
        let person: Option<(Option<i64>,)> = sqlx::query_as("SELECT person_id FROM users WHERE id = $1").bind(p.user_id).fetch_optional(&self.db.pool).await?;
        match person.and_then(|r| r.0) {
            Some(id) => Ok(Some(self.person_flags(id).await?)),
            None => Ok(None),
        }
    }

    /// Whether grants of data access are refused to flagged people (off by default).
    pub async fn block_flagged_grants(&self) -> Result<bool> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT value FROM register_settings WHERE key = 'block_flagged_grants'").fetch_optional(&self.db.pool).await?;
        Ok(row.is_some_and(|r| r.0 == "true"))
    }

    pub async fn set_block_flagged_grants(&self, p: &Principal, on: bool) -> Result<()> {
        self.require(p, Action::RegistersWrite).await?;
        if !p.roles.iter().any(|r| matches!(r, Role::Ciso | Role::InfoManager)) {
            return Err(CoreError::Forbidden { rule: Some("security-office-sets-grant-blocking".into()) });
        }
        // A policy change (SECURITY-BASELINE): a fresh password check in the console.
        self.require_recent_auth(p)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        sqlx::query("DELETE FROM register_settings WHERE key = 'block_flagged_grants'").execute(&mut *tx).await?;
        sqlx::query("INSERT INTO register_settings (key, value) VALUES ('block_flagged_grants', $1)").bind(if on { "true" } else { "false" }).execute(&mut *tx).await?;
        let ev = Event::new(now, p.actor(), "settings.block_flagged_grants").detail("on", on);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Refuses a grant to a flagged person when blocking is on (called by the vault).
    pub async fn check_grantee_flags(&self, user: i64) -> Result<()> {
        if !self.block_flagged_grants().await? {
            return Ok(());
        }
        let person: Option<(Option<i64>,)> = sqlx::query_as("SELECT person_id FROM users WHERE id = $1").bind(user).fetch_optional(&self.db.pool).await?;
        if let Some(person) = person.and_then(|r| r.0) {
            let f = self.person_flags(person).await?;
            if f.flagged {
                return Err(CoreError::Forbidden { rule: Some("grantee-owes-pledge-or-training".into()) });
            }
        }
        Ok(())
    }
}
