//! People and places: sites, departments, zones, people, clients (委託元) and businesses (業務),
//! and the CSV import of a staff roster. Every change appends its event in the same transaction.
//! Events name people by id only, never by name.

use mamori_ledger::Event;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use crate::auth::Principal;
use crate::error::{CoreError, Result};
use crate::policy::Action;
use crate::types::{Code, Date, PersonKind, PersonStatus, Text, ZoneLevel};
use crate::Mamori;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSite {
    pub code: Code,
    pub name: Text,
    #[serde(default)]
    pub address: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDepartment {
    pub code: Code,
    pub name: Text,
    #[serde(default)]
    pub site: Option<Code>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewZone {
    pub code: Code,
    pub name: Text,
    pub level: ZoneLevel,
    #[serde(default)]
    pub parent: Option<Code>,
    #[serde(default)]
    pub site: Option<Code>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPerson {
    pub employee_no: Code,
    pub name: Text,
    #[serde(default)]
    pub kana: Option<String>,
    pub kind: PersonKind,
    #[serde(default)]
    pub department: Option<Code>,
    #[serde(default)]
    pub position: Option<String>,
    #[serde(default)]
    pub duties: Option<String>,
    #[serde(default)]
    pub start_date: Option<Date>,
    #[serde(default)]
    pub end_date: Option<Date>,
    #[serde(default)]
    pub status: Option<PersonStatus>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub code: Code,
    pub name: Text,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBusiness {
    pub code: Code,
    pub name: Text,
    pub client: Code,
    #[serde(default)]
    pub zone: Option<Code>,
    #[serde(default)]
    pub my_number: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SiteRow {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub address: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DepartmentRow {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub site: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ZoneRow {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub level: ZoneLevel,
    pub parent: Option<String>,
    pub site: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PersonRow {
    pub id: i64,
    pub employee_no: String,
    pub name: String,
    pub kana: String,
    pub kind: PersonKind,
    pub department: Option<String>,
    pub position: String,
    pub duties: String,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub status: PersonStatus,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClientRow {
    pub id: i64,
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BusinessRow {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub client: String,
    pub zone: Option<String>,
    pub my_number: bool,
}

pub(crate) fn opt_text(field: &str, s: &Option<String>, max: usize) -> Result<String> {
    let s = s.as_deref().unwrap_or("").trim();
    if s.chars().count() > max {
        return Err(CoreError::invalid(field, format!("must be at most {max} characters")));
    }
    if s.chars().any(char::is_control) {
        return Err(CoreError::invalid(field, "must not contain control characters"));
    }
    Ok(s.to_owned())
}

async fn id_by_code(conn: &mut AnyConnection, table: &'static str, field: &str, code: &Option<Code>) -> Result<Option<i64>> {
    match code {
        Some(code) => crate::doors::id_of(conn, table, field, code.as_str()).await.map(Some),
        None => Ok(None),
    }
}

impl Mamori {
    pub async fn create_site(&self, p: &Principal, s: NewSite) -> Result<i64> {
        self.require(p, Action::DirectoryWrite).await?;
        let address = opt_text("address", &s.address, 300)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (id,): (i64,) =
            sqlx::query_as("INSERT INTO sites (code, name, address, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
                .bind(s.code.as_str())
                .bind(s.name.as_str())
                .bind(address)
                .bind(now.timestamp_millis())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| CoreError::from_db_unique(e, "site code"))?;
        self.ledger.append_tx(&mut tx, &Event::new(now, p.actor(), "site.create").object("site", s.code)).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_sites(&self, p: &Principal) -> Result<Vec<SiteRow>> {
        self.require(p, Action::DirectoryRead).await?;
        let rows: Vec<(i64, String, String, String)> =
            sqlx::query_as("SELECT id, code, name, address FROM sites ORDER BY code").fetch_all(&self.db.pool).await?;
        Ok(rows.into_iter().map(|(id, code, name, address)| SiteRow { id, code, name, address }).collect())
    }

    pub async fn create_department(&self, p: &Principal, d: NewDepartment) -> Result<i64> {
        self.require(p, Action::DirectoryWrite).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let site = id_by_code(&mut tx, "sites", "site", &d.site).await?;
        let (id,): (i64,) =
            sqlx::query_as("INSERT INTO departments (code, name, site_id, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
                .bind(d.code.as_str())
                .bind(d.name.as_str())
                .bind(site)
                .bind(now.timestamp_millis())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| CoreError::from_db_unique(e, "department code"))?;
        self.ledger.append_tx(&mut tx, &Event::new(now, p.actor(), "department.create").object("department", d.code)).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_departments(&self, p: &Principal) -> Result<Vec<DepartmentRow>> {
        self.require(p, Action::DirectoryRead).await?;
        let rows: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(
            "SELECT d.id, d.code, d.name, s.code FROM departments d LEFT JOIN sites s ON s.id = d.site_id ORDER BY d.code",
        )
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.into_iter().map(|(id, code, name, site)| DepartmentRow { id, code, name, site }).collect())
    }

    pub async fn create_zone(&self, p: &Principal, z: NewZone) -> Result<i64> {
        self.require(p, Action::DirectoryWrite).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let parent = id_by_code(&mut tx, "zones", "parent", &z.parent).await?;
        let site = id_by_code(&mut tx, "sites", "site", &z.site).await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO zones (code, name, level, parent_id, site_id, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(z.code.as_str())
        .bind(z.name.as_str())
        .bind(z.level.as_str())
        .bind(parent)
        .bind(site)
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| CoreError::from_db_unique(e, "zone code"))?;
        let ev = Event::new(now, p.actor(), "zone.create").object("zone", z.code.as_str()).detail("level", z.level);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_zones(&self, p: &Principal) -> Result<Vec<ZoneRow>> {
        self.require(p, Action::DirectoryRead).await?;
        let rows: Vec<(i64, String, String, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT z.id, z.code, z.name, z.level, pz.code, s.code FROM zones z \
             LEFT JOIN zones pz ON pz.id = z.parent_id LEFT JOIN sites s ON s.id = z.site_id ORDER BY z.code",
        )
        .fetch_all(&self.db.pool)
        .await?;
        rows.into_iter()
            .map(|(id, code, name, level, parent, site)| {
                Ok(ZoneRow { id, code, name, level: level.parse()?, parent, site })
            })
            .collect()
    }

    /// Inserts or updates a person. Leaving, suspension, an end date reached, or a transfer to
    /// another department revokes their credentials in the same transaction (PHY-7); the
    /// revoked cards are added to `revoked` to be pushed to door agents after the commit.
    async fn insert_person(
        &self,
        conn: &mut AnyConnection,
        p: &Principal,
        n: &NewPerson,
        now_ms: i64,
        revoked: &mut Vec<(i64, Vec<String>)>,
    ) -> Result<(i64, bool)> {
        let dept = id_by_code(conn, "departments", "department", &n.department).await?;
        let kana = opt_text("kana", &n.kana, 200)?;
        let position = opt_text("position", &n.position, 100)?;
        let duties = opt_text("duties", &n.duties, 300)?;
        if let (Some(s), Some(e)) = (n.start_date, n.end_date) {
            if e < s {
                return Err(CoreError::invalid("end_date", "is before the start date"));
            }
        }
        let status = n.status.unwrap_or(PersonStatus::Active);
        let existing: Option<(i64,)> = sqlx::query_as("SELECT id FROM people WHERE employee_no = $1")
            .bind(n.employee_no.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        let (id, created) = if let Some((id,)) = existing {
            let (old_status, old_dept): (String, Option<i64>) =
                sqlx::query_as("SELECT status, department_id FROM people WHERE id = $1").bind(id).fetch_one(&mut *conn).await?;
            let today = crate::doors::rules::jst(self.clock.now()).date_naive();
            let reason = if status != PersonStatus::Active && old_status == "active" {
                Some(format!("status {}", status.as_str()))
            } else if n.end_date.is_some_and(|e| e.naive() < today) {
                Some("employment ended".to_owned())
            } else if old_dept != dept {
                Some("transfer".to_owned())
            } else {
                None
            };
            if let Some(reason) = reason {
                let cards = self.revoke_person_in(conn, p.actor(), id, &reason).await?;
                revoked.push((id, cards));
            }
            sqlx::query(
                "UPDATE people SET name = $1, kana = $2, kind = $3, department_id = $4, position = $5, duties = $6, \
                 start_date = $7, end_date = $8, status = $9, updated_at = $10 WHERE id = $11",
            )
            .bind(n.name.as_str())
            .bind(kana)
            .bind(n.kind.as_str())
            .bind(dept)
            .bind(position)
            .bind(duties)
            .bind(n.start_date.map(|d| d.to_string()))
            .bind(n.end_date.map(|d| d.to_string()))
            .bind(status.as_str())
            .bind(now_ms)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            (id, false)
        } else {
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO people (employee_no, name, kana, kind, department_id, position, duties, start_date, end_date, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
            )
            .bind(n.employee_no.as_str())
            .bind(n.name.as_str())
            .bind(kana)
            .bind(n.kind.as_str())
            .bind(dept)
            .bind(position)
            .bind(duties)
            .bind(n.start_date.map(|d| d.to_string()))
            .bind(n.end_date.map(|d| d.to_string()))
            .bind(status.as_str())
            .bind(now_ms)
            .bind(now_ms)
            .fetch_one(&mut *conn)
            .await?;
            (id, true)
        };
        let ev = Event::new(self.clock.now(), p.actor(), if created { "person.create" } else { "person.update" })
            .object("person", id)
            .detail("kind", n.kind)
            .detail("status", status);
        self.ledger.append_tx(conn, &ev).await?;
        Ok((id, created))
    }

    /// Creates a person; an existing employee number is a conflict.
    pub async fn create_person(&self, p: &Principal, n: NewPerson) -> Result<i64> {
        self.require(p, Action::PeopleWrite).await?;
        let mut tx = self.db.begin().await?;
        let exists: Option<(i64,)> = sqlx::query_as("SELECT id FROM people WHERE employee_no = $1")
            .bind(n.employee_no.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(CoreError::Conflict("employee number already exists".into()));
        }
        let mut revoked = Vec::new();
        let (id, _) = self.insert_person(&mut tx, p, &n, self.clock.now_ms(), &mut revoked).await?;
        tx.commit().await?;
        self.after_people_change(revoked).await?;
        Ok(id)
    }

    /// Updates a person by employee number (all fields replaced).
    pub async fn update_person(&self, p: &Principal, n: NewPerson) -> Result<i64> {
        self.require(p, Action::PeopleWrite).await?;
        let mut tx = self.db.begin().await?;
        let exists: Option<(i64,)> = sqlx::query_as("SELECT id FROM people WHERE employee_no = $1")
            .bind(n.employee_no.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(CoreError::NotFound("person"));
        }
        let mut revoked = Vec::new();
        let (id, _) = self.insert_person(&mut tx, p, &n, self.clock.now_ms(), &mut revoked).await?;
        tx.commit().await?;
        self.after_people_change(revoked).await?;
        Ok(id)
    }

    /// Pushes revoked cards to door agents and rebuilds the door rules.
    async fn after_people_change(&self, revoked: Vec<(i64, Vec<String>)>) -> Result<()> {
        for (person, cards) in revoked {
            self.after_revocation(person, cards).await?;
        }
        self.reload_door_rules().await?;
        Ok(())
    }

    pub async fn list_people(&self, p: &Principal) -> Result<Vec<PersonRow>> {
        self.require(p, Action::PeopleRead).await?;
        type R = (i64, String, String, String, String, Option<String>, String, String, Option<String>, Option<String>, String);
        let rows: Vec<R> = sqlx::query_as(
            "SELECT p.id, p.employee_no, p.name, p.kana, p.kind, d.code, p.position, p.duties, p.start_date, p.end_date, p.status \
             FROM people p LEFT JOIN departments d ON d.id = p.department_id ORDER BY p.employee_no",
        )
        .fetch_all(&self.db.pool)
        .await?;
        rows.into_iter()
            .map(|(id, employee_no, name, kana, kind, department, position, duties, start_date, end_date, status)| {
                Ok(PersonRow {
                    id,
                    employee_no,
                    name,
                    kana,
                    kind: kind.parse()?,
                    department,
                    position,
                    duties,
                    start_date,
                    end_date,
                    status: status.parse()?,
                })
            })
            .collect()
    }

    pub async fn create_client(&self, p: &Principal, c: NewClient) -> Result<i64> {
        self.require(p, Action::DirectoryWrite).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (id,): (i64,) = sqlx::query_as("INSERT INTO clients (code, name, created_at) VALUES ($1, $2, $3) RETURNING id")
            .bind(c.code.as_str())
            .bind(c.name.as_str())
            .bind(now.timestamp_millis())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| CoreError::from_db_unique(e, "client code"))?;
        self.ledger.create_client_log(&mut tx, id, c.code.as_str()).await?;
        let ev = Event::new(now, p.actor(), "client.create").object("client", c.code.as_str()).client(c.code.as_str());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_clients(&self, p: &Principal) -> Result<Vec<ClientRow>> {
        self.require(p, Action::DirectoryRead).await?;
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT id, code, name FROM clients ORDER BY code").fetch_all(&self.db.pool).await?;
        Ok(rows.into_iter().map(|(id, code, name)| ClientRow { id, code, name }).collect())
    }

    pub async fn create_business(&self, p: &Principal, b: NewBusiness) -> Result<i64> {
        self.require(p, Action::DirectoryWrite).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let client = id_by_code(&mut tx, "clients", "client", &Some(b.client.clone())).await?;
        let zone = id_by_code(&mut tx, "zones", "zone", &b.zone).await?;
        // A My Number business works in a zone of its own (MYNUM-1).
        if let Some(z) = zone {
            let (others, my_number): (i64, i64) =
                sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(SUM(my_number), 0) AS BIGINT) FROM businesses WHERE zone_id = $1").bind(z).fetch_one(&mut *tx).await?;
            if b.my_number && others > 0 {
                return Err(CoreError::invalid("zone", "a My Number business needs a zone of its own (MYNUM-1); other businesses use this one"));
            }
            if my_number > 0 {
                return Err(CoreError::invalid("zone", "this zone belongs to a My Number business (MYNUM-1)"));
            }
        }
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO businesses (code, name, client_id, zone_id, my_number, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(b.code.as_str())
        .bind(b.name.as_str())
        .bind(client)
        .bind(zone)
        .bind(i64::from(b.my_number))
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| CoreError::from_db_unique(e, "business code"))?;
        let ev = Event::new(now, p.actor(), "business.create")
            .object("business", b.code.as_str())
            .client(b.client.as_str())
            .detail("business", b.code.as_str());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_businesses(&self, p: &Principal) -> Result<Vec<BusinessRow>> {
        self.require(p, Action::DirectoryRead).await?;
        let rows: Vec<(i64, String, String, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT b.id, b.code, b.name, c.code, z.code, b.my_number FROM businesses b JOIN clients c ON c.id = b.client_id \
             LEFT JOIN zones z ON z.id = b.zone_id ORDER BY b.code",
        )
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, code, name, client, zone, my)| BusinessRow { id, code, name, client, zone, my_number: my != 0 })
            .collect())
    }

    /// Replaces a user's roles (a privilege change: recorded, and needs a recent password check).
    pub async fn set_roles(&self, p: &Principal, user_id: i64, roles: &[crate::types::Role]) -> Result<()> {
        self.require(p, Action::UsersManage).await?;
        self.require_recent_auth(p)?;
        if roles.contains(&crate::types::Role::Admin) && !p.has(crate::types::Role::Admin) {
            return Err(CoreError::Forbidden { rule: Some("only-admin-adds-admin".into()) });
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let exists: Option<(i64,)> = sqlx::query_as("SELECT id FROM users WHERE id = $1").bind(user_id).fetch_optional(&mut *tx).await?;
        if exists.is_none() {
            return Err(CoreError::NotFound("user"));
        }
        sqlx::query("DELETE FROM role_assignments WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        for r in roles {
            sqlx::query("INSERT INTO role_assignments (user_id, role, created_at) VALUES ($1, $2, $3)")
                .bind(user_id)
                .bind(r.as_str())
                .bind(now.timestamp_millis())
                .execute(&mut *tx)
                .await?;
        }
        // A privilege change ends the user's sessions: they sign in again with a new identifier.
        sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        let ev = Event::new(now, p.actor(), "user.roles_set")
            .object("user", user_id)
            .detail("roles", roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(","));
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Encodes rows as CSV that Excel opens correctly: UTF-8 with BOM, CRLF line ends, and any cell
/// that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`) kept as text with a `'`.
pub fn encode_csv<I, R, S>(rows: I) -> Result<Vec<u8>>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut w = csv::WriterBuilder::new().flexible(true).terminator(csv::Terminator::CRLF).from_writer(Vec::from(&b"\xEF\xBB\xBF"[..]));
    for row in rows {
        let cells: Vec<String> = row
            .into_iter()
            .map(|c| {
                let c = c.as_ref();
                if c.starts_with(['=', '+', '-', '@']) { format!("'{c}") } else { c.to_owned() }
            })
            .collect();
        w.write_record(&cells).map_err(|e| CoreError::Internal(e.to_string()))?;
    }
    w.into_inner().map_err(|e| CoreError::Internal(e.to_string()))
}

/// Decodes an uploaded CSV: UTF-8 (with or without BOM) or Shift_JIS (as HR systems export it).
pub fn decode_csv(bytes: &[u8]) -> Result<String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok(s.to_owned());
    }
    let (s, _, had_errors) = encoding_rs::SHIFT_JIS.decode(bytes);
    if had_errors {
        // Find the line of the first undecodable byte for the message.
        let line = bytes
            .split(|b| *b == b'\n')
            .position(|l| encoding_rs::SHIFT_JIS.decode_without_bom_handling_and_without_replacement(l).is_none())
            .map_or(1, |i| i as u64 + 1);
        return Err(CoreError::Import { line, message: "the file is neither UTF-8 nor Shift_JIS".into() });
    }
    Ok(s.into_owned())
}

const HEADERS: &[(&str, &[&str])] = &[
    ("employee_no", &["employee_no", "社員番号", "従業員番号"]),
    ("name", &["name", "氏名"]),
    ("kana", &["kana", "フリガナ", "ふりがな", "氏名カナ"]),
    ("kind", &["kind", "雇用区分", "区分"]),
    ("department", &["department", "部署コード", "部署"]),
    ("position", &["position", "職位", "役職"]),
    ("duties", &["duties", "担務", "担当業務"]),
    ("start_date", &["start_date", "入社日", "雇用開始日"]),
    ("end_date", &["end_date", "退職日", "雇用終了日"]),
    ("status", &["status", "在籍状況"]),
];

/// Parses a whole roster; the first bad row rejects the file with its line number.
pub fn parse_roster(text: &str) -> Result<Vec<NewPerson>> {
    let mut rdr = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
    let headers = rdr.headers().map_err(|e| CoreError::Import { line: 1, message: e.to_string() })?.clone();
    let mut col = std::collections::HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        let h = h.trim();
        match HEADERS.iter().find(|(_, names)| names.contains(&h)) {
            Some((key, _)) => {
                col.insert(*key, i);
            }
            None => return Err(CoreError::Import { line: 1, message: format!("unknown column {h:?}") }),
        }
    }
    for required in ["employee_no", "name", "kind"] {
        if !col.contains_key(required) {
            return Err(CoreError::Import { line: 1, message: format!("missing column {required}") });
        }
    }
    // Line numbers from byte offsets: the csv crate's own line count is off with CRLF endings.
    let line_at = |byte: u64| {
        let bytes = text.as_bytes();
        let mut b = (byte as usize).min(bytes.len());
        while matches!(bytes.get(b), Some(b'\r' | b'\n')) {
            b += 1;
        }
        bytes[..b].iter().filter(|c| **c == b'\n').count() as u64 + 1
    };
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| CoreError::Import {
            line: e.position().map_or(0, |p| line_at(p.byte())),
            message: "malformed CSV row (wrong number of fields or bad quoting)".into(),
        })?;
        let line = rec.position().map_or(0, |p| line_at(p.byte()));
        let get = |k: &str| col.get(k).and_then(|&i| rec.get(i)).unwrap_or("").to_owned();
        let wrap = |e: CoreError| CoreError::Import { line, message: e.to_string() };
        let opt = |k: &str| {
            let v = get(k);
            if v.trim().is_empty() { None } else { Some(v) }
        };
        out.push(NewPerson {
            employee_no: Code::parse("employee_no", &get("employee_no")).map_err(wrap)?,
            name: Text::parse("name", &get("name")).map_err(wrap)?,
            kana: opt("kana"),
            kind: get("kind").parse().map_err(wrap)?,
            department: opt("department").map(|d| Code::parse("department", &d)).transpose().map_err(wrap)?,
            position: opt("position"),
            duties: opt("duties"),
            start_date: Date::parse_opt("start_date", &get("start_date")).map_err(wrap)?,
            end_date: Date::parse_opt("end_date", &get("end_date")).map_err(wrap)?,
            status: opt("status").map(|s| s.parse()).transpose().map_err(wrap)?,
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub created: u64,
    pub updated: u64,
}

impl Mamori {
    /// Imports a roster: parsed fully first; then written in one transaction, so a row that
    /// fails (an unknown department, say) leaves nothing of the file behind.
    pub async fn import_people(&self, p: &Principal, bytes: &[u8]) -> Result<ImportReport> {
        self.require(p, Action::PeopleImport).await?;
        let text = decode_csv(bytes)?;
        let people = parse_roster(&text)?;
        let mut seen = std::collections::HashSet::new();
        for (i, n) in people.iter().enumerate() {
            if !seen.insert(n.employee_no.as_str().to_owned()) {
                return Err(CoreError::Import { line: i as u64 + 2, message: format!("employee number {} appears twice", n.employee_no) });
            }
        }
        let now = self.clock.now_ms();
        let mut tx = self.db.begin().await?;
        let (mut created, mut updated) = (0, 0);
        let mut revoked = Vec::new();
        for (i, n) in people.iter().enumerate() {
            match self.insert_person(&mut tx, p, n, now, &mut revoked).await {
                Ok((_, true)) => created += 1,
                Ok((_, false)) => updated += 1,
                Err(e) => return Err(CoreError::Import { line: i as u64 + 2, message: e.to_string() }),
            }
        }
        let ev = Event::new(self.clock.now(), p.actor(), "people.import").detail("created", created).detail("updated", updated);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        self.after_people_change(revoked).await?;
        Ok(ImportReport { created, updated })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn csv_for_excel_is_quoted_and_never_formulas() {
        let out = String::from_utf8(encode_csv([["山田, 太郎", "=HYPERLINK(\"x\")", "090-1234"]]).unwrap()).unwrap();
        assert_eq!(out, "\u{feff}\"山田, 太郎\",\"'=HYPERLINK(\"\"x\"\")\",090-1234\r\n");
    }

    #[test]
    fn roster_in_japanese_headers_and_shift_jis() {
        let csv = "社員番号,氏名,フリガナ,雇用区分,部署コード,職位,担務,入社日\nE001,山田 太郎,ヤマダ タロウ,社員,OPS,主任,カード入力,2024/04/01\n";
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(csv);
        let text = decode_csv(&sjis).unwrap();
        let people = parse_roster(&text).unwrap();
        assert_eq!(people.len(), 1);
        assert_eq!(people[0].name.as_str(), "山田 太郎");
        assert_eq!(people[0].kind, PersonKind::Employee);
    }

    #[test]
    fn bad_row_is_named_by_line() {
        let csv = "employee_no,name,kind\nE1,A,employee\nE2,B,contractor\n";
        match parse_roster(csv) {
            Err(CoreError::Import { line, message }) => {
                assert_eq!(line, 3);
                assert!(message.contains("contractor"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_roster("employee_no,name,kind\nE1,A\n"), Err(CoreError::Import { line: 2, .. })));
    }
}
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod crlf_tests {
    #[test]
    fn crlf_line_numbers() {
        let csv = "employee_no,name,kind\r\nE1,A,employee\r\nE2,B,employee\r\nE3,C,contractor\r\n";
        match super::parse_roster(csv) {
            Err(crate::CoreError::Import { line, .. }) => assert_eq!(line, 4),
            other => panic!("{other:?}"),
        }
    }
}
