//! The asset register (情報資産台帳, MGMT-3): per department, each information asset with its
//! owner, where it is kept (a zone), its medium, C/I/A ratings 1–3 (its value is their highest),
//! whether it holds personal data (My Number, sensitive), its retention and how it is disposed of.
//! Imported and exported as Excel-friendly CSV (Japanese headers; UTF-8 with BOM out, UTF-8 or
//! Shift_JIS in); a file with a bad row is rejected whole, naming the line.

use mamori_ledger::Event;
use serde::{Deserialize, Serialize};

use super::risk::{Cia, Rating};
use crate::auth::Principal;
use crate::error::{CoreError, Result};
use crate::policy::Action;
use crate::types::{Code, Text};
use crate::Mamori;

/// The CSV columns, in order.
pub const HEADERS: [&str; 13] =
    ["部署", "情報資産", "管理責任者", "保管場所", "媒体", "機密性", "完全性", "可用性", "個人情報", "マイナンバー", "要配慮個人情報", "保存期間", "廃棄方法"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAsset {
    pub department: Code,
    pub name: Text,
    pub owner: Text,
    #[serde(default)]
    pub zone: Option<Code>,
    pub medium: Text,
    pub c: Rating,
    pub i: Rating,
    pub a: Rating,
    #[serde(default)]
    pub personal: bool,
    #[serde(default)]
    pub my_number: bool,
    #[serde(default)]
    pub sensitive: bool,
    pub retention: Text,
    pub disposal: Text,
}

#[derive(Debug, Clone, Serialize)]
pub struct AssetRow {
    pub id: i64,
    pub department: String,
    pub name: String,
    pub owner: String,
    pub zone: Option<String>,
    pub medium: String,
    pub c: u8,
    pub i: u8,
    pub a: u8,
    /// The asset value: max(C, I, A).
    pub value: u8,
    pub personal: bool,
    pub my_number: bool,
    pub sensitive: bool,
    pub retention: String,
    pub disposal: String,
}

fn flag(s: &str) -> Option<bool> {
    match s.trim() {
        "" | "0" | "無" | "なし" | "いいえ" | "no" | "false" => Some(false),
        "1" | "有" | "あり" | "はい" | "yes" | "true" | "○" | "〇" => Some(true),
        _ => None,
    }
}

fn rating(field: &str, s: &str) -> Result<Rating> {
    s.trim().parse::<u8>().ok().and_then(|v| Rating::try_from(v).ok()).ok_or_else(|| CoreError::invalid(field, "1, 2 or 3"))
}

impl NewAsset {
    fn check(&self) -> Result<()> {
        if self.my_number && !self.personal {
            return Err(CoreError::invalid("personal", "an asset with My Numbers holds personal data"));
        }
        if self.sensitive && !self.personal {
            return Err(CoreError::invalid("personal", "an asset with sensitive data holds personal data"));
        }
        Ok(())
    }

    /// One CSV row (the columns of [`HEADERS`]).
    fn from_row(r: &csv::StringRecord) -> Result<Self> {
        if r.len() != HEADERS.len() {
            return Err(CoreError::invalid("row", format!("{} columns expected, {} found", HEADERS.len(), r.len())));
        }
        let f = |i: usize| r.get(i).unwrap_or("").trim();
        let yes = |i: usize| flag(f(i)).ok_or_else(|| CoreError::invalid(HEADERS[i], "有 or 無 (1 or 0)"));
        Ok(Self {
            department: Code::parse(HEADERS[0], f(0))?,
            name: Text::parse(HEADERS[1], f(1))?,
            owner: Text::parse(HEADERS[2], f(2))?,
            zone: if f(3).is_empty() { None } else { Some(Code::parse(HEADERS[3], f(3))?) },
            medium: Text::parse(HEADERS[4], f(4))?,
            c: rating(HEADERS[5], f(5))?,
            i: rating(HEADERS[6], f(6))?,
            a: rating(HEADERS[7], f(7))?,
            personal: yes(8)?,
            my_number: yes(9)?,
            sensitive: yes(10)?,
            retention: Text::parse(HEADERS[11], f(11))?,
            disposal: Text::parse(HEADERS[12], f(12))?,
        })
    }
}

impl Mamori {
    async fn insert_asset(&self, conn: &mut sqlx::AnyConnection, a: &NewAsset, now: i64) -> Result<i64> {
        a.check()?;
        let dept = crate::doors::id_of(conn, "departments", "department", a.department.as_str()).await?;
        let zone = match &a.zone {
            Some(z) => Some(crate::doors::id_of(conn, "zones", "zone", z.as_str()).await?),
            None => None,
        };
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO assets (department_id, name, owner, zone_id, medium, c, i, a, personal, my_number, sensitive, retention, disposal, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
        )
        .bind(dept)
        .bind(a.name.as_str())
        .bind(a.owner.as_str())
        .bind(zone)
        .bind(a.medium.as_str())
        .bind(i64::from(a.c.get()))
        .bind(i64::from(a.i.get()))
        .bind(i64::from(a.a.get()))
        .bind(i64::from(a.personal))
        .bind(i64::from(a.my_number))
        .bind(i64::from(a.sensitive))
        .bind(a.retention.as_str())
        .bind(a.disposal.as_str())
        .bind(now)
        .bind(now)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| CoreError::from_db_unique(e, "asset (department and name)"))?;
        Ok(id)
    }

    pub async fn create_asset(&self, p: &Principal, a: NewAsset) -> Result<i64> {
        self.require(p, Action::RegistersWrite).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let id = self.insert_asset(&mut tx, &a, now.timestamp_millis()).await?;
        let ev = Event::new(now, p.actor(), "asset.create").object("asset", id).detail("department", a.department.as_str());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Imports assets from CSV; every row is checked before anything is written.
    pub async fn import_assets(&self, p: &Principal, bytes: &[u8]) -> Result<usize> {
        self.require(p, Action::RegistersWrite).await?;
        let text = crate::directory::decode_csv(bytes)?;
        let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
        let headers = rdr.headers().map_err(|e| CoreError::Import { line: 1, message: e.to_string() })?.clone();
        if headers.iter().map(str::trim).collect::<Vec<_>>() != HEADERS {
            return Err(CoreError::Import { line: 1, message: format!("the header must be: {}", HEADERS.join(",")) });
        }
        let mut rows = Vec::new();
        for (n, rec) in rdr.records().enumerate() {
            let line = n as u64 + 2;
            let rec = rec.map_err(|e| CoreError::Import { line, message: e.to_string() })?;
            let a = NewAsset::from_row(&rec).and_then(|a| a.check().map(|()| a)).map_err(|e| CoreError::Import { line, message: e.to_string() })?;
            rows.push((line, a));
        }
        if rows.is_empty() {
            return Err(CoreError::Import { line: 2, message: "the file has no assets".into() });
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        for (line, a) in &rows {
            // Unknown departments or zones, and duplicates, are named with their line too.
            self.insert_asset(&mut tx, a, now.timestamp_millis()).await.map_err(|e| match e {
                CoreError::Db(_) | CoreError::Internal(_) => e,
                other => CoreError::Import { line: *line, message: other.to_string() },
            })?;
        }
        let ev = Event::new(now, p.actor(), "asset.import").detail("assets", rows.len());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(rows.len())
    }

    pub async fn list_assets(&self, p: &Principal) -> Result<Vec<AssetRow>> {
        self.require(p, Action::RegistersRead).await?;
        #[allow(clippy::type_complexity)]
        let rows: Vec<(i64, String, String, String, Option<String>, String, i64, i64, i64, i64, i64, i64, String, String)> = sqlx::query_as(
            "SELECT a.id, d.code, a.name, a.owner, z.code, a.medium, a.c, a.i, a.a, a.personal, a.my_number, a.sensitive, a.retention, a.disposal \
             FROM assets a JOIN departments d ON d.id = a.department_id LEFT JOIN zones z ON z.id = a.zone_id ORDER BY d.code, a.name",
        )
        .fetch_all(&self.db.pool)
        .await?;
        rows.into_iter()
            .map(|(id, department, name, owner, zone, medium, c, i, a, personal, my_number, sensitive, retention, disposal)| {
                let r = |v: i64| u8::try_from(v).ok().and_then(|v| Rating::try_from(v).ok()).ok_or_else(|| CoreError::Internal("rating out of range".into()));
                let cia = Cia { c: r(c)?, i: r(i)?, a: r(a)? };
                Ok(AssetRow {
                    id,
                    department,
                    name,
                    owner,
                    zone,
                    medium,
                    c: cia.c.get(),
                    i: cia.i.get(),
                    a: cia.a.get(),
                    value: cia.value().get(),
                    personal: personal != 0,
                    my_number: my_number != 0,
                    sensitive: sensitive != 0,
                    retention,
                    disposal,
                })
            })
            .collect()
    }

    /// The register as CSV for Excel (UTF-8 with BOM), the same columns as the import.
    pub async fn export_assets(&self, p: &Principal) -> Result<Vec<u8>> {
        let rows = self.list_assets(p).await?;
        let yn = |b: bool| if b { "有" } else { "無" }.to_owned();
        let lines = rows.into_iter().map(|a| {
            vec![
                a.department,
                a.name,
                a.owner,
                a.zone.unwrap_or_default(),
                a.medium,
                a.c.to_string(),
                a.i.to_string(),
                a.a.to_string(),
                yn(a.personal),
                yn(a.my_number),
                yn(a.sensitive),
                a.retention,
                a.disposal,
            ]
        });
        crate::directory::encode_csv(std::iter::once(HEADERS.map(String::from).to_vec()).chain(lines))
    }
}
