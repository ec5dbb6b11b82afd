//! The APPI clock (INC-1, INC-2): whether a leak (漏えい等) must be reported to the Personal
//! Information Protection Commission, on which grounds, and by when.
//!
//! Grounds under the APPI (施行規則 7条): sensitive personal information (要配慮個人情報);
//! risk of financial damage from misuse (card numbers, banking credentials); possibly done for an
//! improper purpose (不正の目的: unauthorised access, staff taking data out); more than 1,000
//! people. For My Numbers (番号法): more than 100 people, or an improper purpose. Data under high
//! encryption (高度な暗号化) is exempt.
//!
//! Deadlines, from the moment the centre learns of it: a preliminary report (速報) promptly —
//! about 3 to 5 days; a final report (確報) within 30 days, 60 days when an improper purpose may
//! be involved. Days run in Japan time, weekends and holidays included, and this module counts
//! the day of learning as day 1 (the earlier reading; a person may report later only knowingly).
//! A processor (委託先) may instead notify its client (委託元) promptly, and is then exempt.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeakFacts {
    pub sensitive: bool,
    pub financial_damage: bool,
    pub improper_purpose: bool,
    /// People affected (or the upper estimate while unknown).
    pub people: u64,
    pub my_number: bool,
    pub highly_encrypted: bool,
    /// The centre processes the data for a client (委託を受けた個人データ).
    pub processor: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ground {
    Sensitive,
    FinancialDamage,
    ImproperPurpose,
    OverThousandPeople,
    MyNumberOverHundredPeople,
    MyNumberImproperPurpose,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppiClock {
    pub reportable: bool,
    pub grounds: Vec<Ground>,
    /// End of the 5th day (Japan time) counting the day of learning as day 1.
    pub preliminary_by: Option<DateTime<Utc>>,
    /// End of the 30th (or 60th) day.
    pub final_by: Option<DateTime<Utc>>,
    pub final_days: Option<i64>,
    /// For a processor: notifying the client promptly replaces its own report.
    pub processor_may_notify_client: bool,
}

/// The last instant of the `n`th day (day 1 = the Japan date of `known`).
fn end_of_day(known: DateTime<Utc>, n: i64) -> DateTime<Utc> {
    let local = crate::doors::rules::jst(known);
    let date = local.date_naive() + Duration::days(n - 1);
    let last = date.and_time(NaiveTime::from_hms_milli_opt(23, 59, 59, 999).unwrap_or_default());
    local.offset().from_local_datetime(&last).single().map_or(known, |d| d.with_timezone(&Utc))
}

/// The grounds that make a leak reportable (none: not reportable).
pub fn grounds(f: &LeakFacts) -> Vec<Ground> {
    let mut grounds = Vec::new();
    if !f.highly_encrypted {
        if f.sensitive {
            grounds.push(Ground::Sensitive);
        }
        if f.financial_damage {
            grounds.push(Ground::FinancialDamage);
        }
        if f.improper_purpose {
            grounds.push(Ground::ImproperPurpose);
        }
        if f.people > 1000 {
            grounds.push(Ground::OverThousandPeople);
        }
        if f.my_number && f.people > 100 {
            grounds.push(Ground::MyNumberOverHundredPeople);
        }
        if f.my_number && f.improper_purpose {
            grounds.push(Ground::MyNumberImproperPurpose);
        }
    }
    grounds
}

/// The grounds and deadlines for a leak learnt of at `known`.
pub fn clock(f: &LeakFacts, known: DateTime<Utc>) -> AppiClock {
    let grounds = grounds(f);
    let reportable = !grounds.is_empty();
    let final_days = reportable.then_some(if f.improper_purpose { 60 } else { 30 });
    AppiClock {
        reportable,
        preliminary_by: reportable.then(|| end_of_day(known, 5)),
        final_by: final_days.map(|d| end_of_day(known, d)),
        final_days,
        grounds,
        processor_may_notify_client: reportable && f.processor,
    }
}

/// A draft of the report's nine items (規則 8条), in Japanese, for a person to finish.
pub fn draft_report(f: &LeakFacts, summary: &str, items: &str, cause: &str) -> String {
    let why: Vec<&str> = grounds(f)
        .iter()
        .map(|g| match g {
            Ground::Sensitive => "要配慮個人情報を含む",
            Ground::FinancialDamage => "不正利用により財産的被害が生じるおそれ",
            Ground::ImproperPurpose => "不正の目的をもって行われたおそれ",
            Ground::OverThousandPeople => "本人の数が1,000人を超える",
            Ground::MyNumberOverHundredPeople => "特定個人情報に係る本人の数が100人を超える",
            Ground::MyNumberImproperPurpose => "特定個人情報について不正の目的をもって行われたおそれ",
        })
        .collect();
    format!(
        "漏えい等報告（下書き）\n報告対象となる事由: {}\n\n\
         (1) 概要: {summary}\n\
         (2) 漏えい等が発生し、又は発生したおそれがある個人データの項目: {items}\n\
         (3) 漏えい等が発生し、又は発生したおそれがある個人データに係る本人の数: {}人\n\
         (4) 原因: {cause}\n\
         (5) 二次被害又はそのおそれの有無及びその内容: （記入）\n\
         (6) 本人への対応の実施状況: （記入）\n\
         (7) 公表の実施状況: （記入）\n\
         (8) 再発防止のための措置: （記入）\n\
         (9) その他参考となる事項: {}\n",
        if why.is_empty() { "（該当なし）".to_owned() } else { why.join("、") },
        f.people,
        if f.processor { "委託を受けて取り扱う個人データ（委託元への通知）" } else { "（記入）" },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    // Learnt of at 23:30 JST on 2026-04-01 (14:30 UTC): day 1 is April 1 in Japan.
    const KNOWN: &str = "2026-04-01T14:30:00Z";

    #[test]
    fn each_ground_and_its_deadlines() {
        let known = at(KNOWN);
        let cases: [(LeakFacts, Vec<Ground>, Option<i64>); 8] = [
            (LeakFacts { sensitive: true, people: 1, ..Default::default() }, vec![Ground::Sensitive], Some(30)),
            (LeakFacts { financial_damage: true, people: 1, ..Default::default() }, vec![Ground::FinancialDamage], Some(30)),
            (LeakFacts { improper_purpose: true, people: 1, ..Default::default() }, vec![Ground::ImproperPurpose], Some(60)),
            (LeakFacts { people: 1001, ..Default::default() }, vec![Ground::OverThousandPeople], Some(30)),
            (LeakFacts { people: 1000, ..Default::default() }, vec![], None),
            (LeakFacts { my_number: true, people: 101, ..Default::default() }, vec![Ground::MyNumberOverHundredPeople], Some(30)),
            (LeakFacts { my_number: true, people: 100, ..Default::default() }, vec![], None),
            (LeakFacts { sensitive: true, people: 5000, highly_encrypted: true, ..Default::default() }, vec![], None),
        ];
        for (f, grounds, days) in cases {
            let c = clock(&f, known);
            assert_eq!(c.grounds, grounds, "{f:?}");
            assert_eq!(c.reportable, !grounds.is_empty());
            assert_eq!(c.final_days, days);
        }
        let c = clock(&LeakFacts { my_number: true, improper_purpose: true, people: 3, ..Default::default() }, known);
        assert_eq!(c.grounds, vec![Ground::ImproperPurpose, Ground::MyNumberImproperPurpose]);
        assert_eq!(c.final_days, Some(60));
    }

    #[test]
    fn deadlines_run_in_japan_time_from_day_one() {
        let c = clock(&LeakFacts { financial_damage: true, people: 20, ..Default::default() }, at(KNOWN));
        // Day 5 ends 2026-04-05 23:59:59.999 JST; day 30 ends 2026-04-30 23:59:59.999 JST.
        assert_eq!(c.preliminary_by.unwrap(), at("2026-04-05T14:59:59.999Z"));
        assert_eq!(c.final_by.unwrap(), at("2026-04-30T14:59:59.999Z"));
        let c = clock(&LeakFacts { improper_purpose: true, people: 1, ..Default::default() }, at(KNOWN));
        assert_eq!(c.final_by.unwrap(), at("2026-05-30T14:59:59.999Z"), "60 days");
        assert!(!c.processor_may_notify_client);
    }

    #[test]
    fn a_processor_may_notify_its_client_instead() {
        let f = LeakFacts { financial_damage: true, people: 1200, processor: true, ..Default::default() };
        let c = clock(&f, at(KNOWN));
        assert!(c.reportable && c.processor_may_notify_client);
        let d = draft_report(&f, "委託元のカード申込書の一部を誤送付", "氏名、カード番号", "宛先の取り違え");
        for item in ["(1) 概要", "(2)", "(3)", "1200人", "(4) 原因: 宛先の取り違え", "(5)", "(6)", "(7)", "(8)", "(9)", "財産的被害", "1,000人を超える", "委託元への通知"] {
            assert!(d.contains(item), "{item}: {d}");
        }
    }
}
