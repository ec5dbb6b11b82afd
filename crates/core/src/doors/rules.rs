//! The door rules: a snapshot of everything a door decision needs (zones, doors, readers,
//! cabinets, credentials, people's levels, approvals and visits, holidays), and the pure
//! decision over it. The server decides from its live snapshot; a door agent decides from its
//! cached copy of the same snapshot when the server is unreachable, with the same code.
//!
//! The engine gathers facts into a Cedar context; `policy/doors.cedar` decides (forbid
//! overrides permit) and names the rule that decided.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, EntityId, EntityTypeName, EntityUid, PolicySet, Request,
    RestrictedExpression,
};
use chrono::{DateTime, Datelike, NaiveDate, Offset, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::card::CardNumber;
use crate::error::{CoreError, Result};
use crate::types::ZoneLevel;

pub const DOOR_POLICY: &str = include_str!("../../policy/doors.cedar");

/// The zone id that stands for "outside the site" (a door's outer side when it has none).
pub const OUTSIDE: i64 = 0;

macro_rules! simple_enum {
    ($name:ident { $($var:ident => $s:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($var),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$var => $s),+ } }
        }
        impl FromStr for $name {
            type Err = CoreError;
            fn from_str(s: &str) -> Result<Self> {
                match s.trim() {
                    $($s => Ok($name::$var),)+
                    other => Err(CoreError::invalid(stringify!($name), format!(
                        "unknown value {other:?}; expected one of: {}", [$($s),+].join(", ")))),
                }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

simple_enum!(Direction { Entry => "entry", Exit => "exit" });
simple_enum!(ReaderMode { Card => "card", CardPalm => "card_palm", CardPin => "card_pin" });
simple_enum!(ApbMode { None => "none", Soft => "soft", Hard => "hard" });

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZoneInfo {
    pub code: String,
    pub level: ZoneLevel,
    pub apb: ApbMode,
    /// Presence older than this many minutes no longer counts for anti-passback (0: never resets).
    pub apb_reset_minutes: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DoorInfo {
    pub id: i64,
    pub code: String,
    pub outside: i64,
    pub inside: i64,
    pub held_open_secs: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReaderInfo {
    pub id: i64,
    pub code: String,
    pub door: i64,
    pub direction: Direction,
    pub mode: ReaderMode,
    pub osdp_address: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CabinetInfo {
    pub id: i64,
    pub code: String,
    pub zone: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CardInfo {
    pub person: i64,
    pub credential: i64,
    pub active: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VisitInfo {
    pub id: i64,
    pub host: i64,
    pub zones: Vec<i64>,
    pub from_ms: i64,
    pub to_ms: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PersonInfo {
    pub visitor: bool,
    pub status_active: bool,
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
    /// Indexes into [`Rules::levels`].
    pub levels: Vec<usize>,
    /// CISO approvals (PHY-4): zone and last valid day.
    pub approvals: Vec<(i64, Option<NaiveDate>)>,
    pub palms: Vec<String>,
    /// argon2 hash of the PIN; never the PIN.
    pub pin_hash: Option<String>,
    pub visit: Option<VisitInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LevelInfo {
    pub code: String,
    pub zones: Vec<i64>,
    /// ISO weekdays allowed, Monday = 1: e.g. "12345".
    pub days: String,
    /// Minutes after midnight, Japan time: [from, to).
    pub from_min: u32,
    pub to_min: u32,
    pub on_holidays: bool,
}

impl LevelInfo {
    /// Whether this level's schedule admits `at` (Japan time).
    pub fn admits(&self, at: DateTime<Utc>, holidays: &BTreeSet<NaiveDate>) -> bool {
        let j = jst(at);
        let day = char::from_digit(j.weekday().number_from_monday(), 10).unwrap_or('0');
        let min = j.hour() * 60 + j.minute();
        self.days.contains(day)
            && self.from_min <= min
            && min < self.to_min
            && (self.on_holidays || !holidays.contains(&j.date_naive()))
    }
}

/// Japan time: a fixed offset (no daylight saving time since 1951).
pub fn jst_offset() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(9 * 3600).unwrap_or(Utc.fix())
}

pub fn jst(at: DateTime<Utc>) -> DateTime<chrono::FixedOffset> {
    at.with_timezone(&jst_offset())
}

/// Everything a decision needs, as of `version`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rules {
    pub version: u64,
    pub built_at_ms: i64,
    pub zones: HashMap<i64, ZoneInfo>,
    pub doors: HashMap<i64, DoorInfo>,
    pub readers: HashMap<String, ReaderInfo>,
    pub cabinets: HashMap<String, CabinetInfo>,
    /// Card key (`felica:…`) to its holder.
    pub cards: HashMap<String, CardInfo>,
    pub people: HashMap<i64, PersonInfo>,
    pub levels: Vec<LevelInfo>,
    pub holidays: BTreeSet<NaiveDate>,
}

/// What was presented: a card, and the second factor where the reader asks for one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Presented {
    #[serde(default)]
    pub card: Option<CardNumber>,
    #[serde(default)]
    pub palm: Option<String>,
    #[serde(default)]
    pub pin: Option<String>,
}

impl std::fmt::Display for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the PIN.
        write!(f, "card={:?} palm={} pin={}", self.card.as_ref().map(|c| c.key()), self.palm.is_some(), self.pin.is_some())
    }
}

/// Where it was presented.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Reader(&'a str),
    Cabinet(&'a str),
}

/// The state the decision reads: where the person is recorded, and whether their host
/// has just passed the same door (escort, PHY-9).
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts {
    /// (zone, since ms) of the person's last recorded passage; None: no record.
    pub presence: Option<(i64, i64)>,
    pub host_escorting: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorDecision {
    pub allowed: bool,
    /// The @id of the rule that decided, or a fixed name when no rule could be asked
    /// (`unknown-credential`, `credential-revoked`, `default-deny`).
    pub rule: String,
    /// `door.enter`, `door.exit` or `cabinet.open`.
    pub action: String,
    pub person: Option<i64>,
    pub credential: Option<i64>,
    pub door: Option<i64>,
    pub reader: Option<i64>,
    pub cabinet: Option<i64>,
    /// Zone left and zone entered (equal for a cabinet).
    pub from_zone: i64,
    pub to_zone: i64,
    /// An anti-passback violation was seen (denied under hard, alarmed under soft).
    pub apb_violation: bool,
    pub visitor: bool,
    /// Whether a granted passage moves the person (entry/exit), so presence must follow.
    pub moves: bool,
}

/// One question to the policy: (action, person, zone, facts).
type Question = (&'static str, i64, i64, Vec<(&'static str, bool)>);

pub struct DoorPolicy {
    policies: PolicySet,
    ids: HashMap<cedar_policy::PolicyId, String>,
    memo: crate::policy::Memo<Question, (bool, String)>,
    authorizer: Authorizer,
    person_ty: EntityTypeName,
    zone_ty: EntityTypeName,
    actions: HashMap<&'static str, EntityUid>,
    /// Each rule's place in the policy text: when several forbid, the first one written names
    /// the decision, so the file orders them from most to least telling.
    rank: HashMap<String, usize>,
}

impl DoorPolicy {
    pub fn new() -> Result<Self> {
        Self::from_text(DOOR_POLICY)
    }
    pub fn from_text(text: &str) -> Result<Self> {
        Self::with_actions(text, &["door.enter", "door.exit", "cabinet.open"])
    }

    /// A fact-based policy over the given actions (the vault uses one for data operations).
    pub fn with_actions(text: &str, action_names: &[&'static str]) -> Result<Self> {
        let policies = PolicySet::from_str(text).map_err(|e| CoreError::Config(format!("door policy: {e}")))?;
        let ty = |s: &str| EntityTypeName::from_str(s).map_err(|e| CoreError::Internal(e.to_string()));
        let action_ty = ty("Action")?;
        let actions = action_names
            .iter()
            .copied()
            .map(|a| (a, EntityUid::from_type_name_and_id(action_ty.clone(), EntityId::new(a))))
            .collect();
        let rank = text
            .match_indices("@id(\"")
            .filter_map(|(i, m)| text[i + m.len()..].split('"').next())
            .enumerate()
            .map(|(n, id)| (id.to_owned(), n))
            .collect();
        Ok(Self { ids: crate::policy::policy_ids(&policies), memo: crate::policy::Memo::new(), policies, authorizer: Authorizer::new(), person_ty: ty("Person")?, zone_ty: ty("Zone")?, actions, rank })
    }

    /// Asks the policy; returns (allowed, deciding rule).
    pub fn evaluate(&self, action: &str, person: i64, zone: i64, facts: &[(&'static str, bool)]) -> Result<(bool, String)> {
        let (name, action) = self.actions.get_key_value(action).ok_or_else(|| CoreError::Internal(format!("unknown door action {action}")))?;
        self.memo.get_or((*name, person, zone, facts.to_vec()), || self.ask(action, person, zone, facts))
    }

    fn ask(&self, action: &EntityUid, person: i64, zone: i64, facts: &[(&'static str, bool)]) -> Result<(bool, String)> {
        let ctx = Context::from_pairs(facts.iter().map(|(k, v)| ((*k).to_owned(), RestrictedExpression::new_bool(*v))))
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        let principal = EntityUid::from_type_name_and_id(self.person_ty.clone(), EntityId::new(person.to_string()));
        let resource = EntityUid::from_type_name_and_id(self.zone_ty.clone(), EntityId::new(zone.to_string()));
        let req = Request::new(principal, action.clone(), resource, ctx, None).map_err(|e| CoreError::Internal(e.to_string()))?;
        let resp = self.authorizer.is_authorized(&req, &self.policies, &Entities::empty());
        let rule = resp
            .diagnostics()
            .reason()
            .filter_map(|pid| self.ids.get(pid))
            .min_by_key(|id| self.rank.get(*id).copied().unwrap_or(usize::MAX))
            .map_or_else(|| "default-deny".to_owned(), String::clone);
        Ok((resp.decision() == CedarDecision::Allow, rule))
    }
}

impl Rules {
    /// Finds the holder of a presented card: Ok(card) or Err(decision denying it).
    pub fn identify(&self, target: Target<'_>, p: &Presented) -> Result<std::result::Result<CardInfo, DoorDecision>> {
        let mut base = self.base_decision(target)?;
        let Some(card) = &p.card else {
            base.rule = "unknown-credential".into();
            return Ok(Err(base));
        };
        match self.cards.get(card.key()) {
            Some(c) if c.active => Ok(Ok(c.clone())),
            Some(c) => {
                base.rule = "credential-revoked".into();
                base.person = Some(c.person);
                base.credential = Some(c.credential);
                Ok(Err(base))
            }
            None => {
                base.rule = "unknown-credential".into();
                Ok(Err(base))
            }
        }
    }

    /// The refusal of a card revoked after these rules were built.
    pub fn revoked_decision(&self, target: Target<'_>, card: &str) -> Result<DoorDecision> {
        let mut d = self.base_decision(target)?;
        d.rule = "credential-revoked".into();
        if let Some(c) = self.cards.get(card) {
            d.person = Some(c.person);
            d.credential = Some(c.credential);
        }
        Ok(d)
    }

    fn base_decision(&self, target: Target<'_>) -> Result<DoorDecision> {
        let mut d = DoorDecision {
            allowed: false,
            rule: String::new(),
            action: String::new(),
            person: None,
            credential: None,
            door: None,
            reader: None,
            cabinet: None,
            from_zone: OUTSIDE,
            to_zone: OUTSIDE,
            apb_violation: false,
            visitor: false,
            moves: false,
        };
        match target {
            Target::Reader(code) => {
                let r = self.readers.get(code).ok_or(CoreError::NotFound("reader"))?;
                let door = self.doors.get(&r.door).ok_or(CoreError::NotFound("door"))?;
                d.reader = Some(r.id);
                d.door = Some(door.id);
                let (from, to) = match r.direction {
                    Direction::Entry => (door.outside, door.inside),
                    Direction::Exit => (door.inside, door.outside),
                };
                d.from_zone = from;
                d.to_zone = to;
                d.action = if r.direction == Direction::Entry { "door.enter" } else { "door.exit" }.into();
                d.moves = true;
            }
            Target::Cabinet(code) => {
                let c = self.cabinets.get(code).ok_or(CoreError::NotFound("cabinet"))?;
                d.cabinet = Some(c.id);
                d.from_zone = c.zone;
                d.to_zone = c.zone;
                d.action = "cabinet.open".into();
            }
        }
        Ok(d)
    }

    /// Decides for an identified card holder.
    pub fn decide(
        &self,
        policy: &DoorPolicy,
        target: Target<'_>,
        presented: &Presented,
        card: &CardInfo,
        facts: Facts,
        now: DateTime<Utc>,
    ) -> Result<DoorDecision> {
        let mut d = self.base_decision(target)?;
        d.person = Some(card.person);
        d.credential = Some(card.credential);
        let empty = PersonInfo::default();
        let person = self.people.get(&card.person).unwrap_or(&empty);
        d.visitor = person.visitor;
        let today = jst(now).date_naive();
        let now_ms = now.timestamp_millis();

        // The zone whose rules apply: the one entered, or the cabinet's room.
        let zone_id = d.to_zone;
        let zone = self.zones.get(&zone_id);
        let covering: Vec<&LevelInfo> =
            person.levels.iter().filter_map(|i| self.levels.get(*i)).filter(|l| l.zones.contains(&zone_id)).collect();
        let level_ok = !covering.is_empty();
        let schedule_ok = covering.iter().any(|l| l.admits(now, &self.holidays));
        let person_active = person.status_active
            && person.start.is_none_or(|s| s <= today)
            && person.end.is_none_or(|e| today <= e);

        let (second_factor_required, second_factor_ok) = match target {
            Target::Reader(code) => match self.readers.get(code).map(|r| r.mode) {
                Some(ReaderMode::CardPalm) => {
                    let palm = presented.palm.as_deref().and_then(|p| super::card::palm_ref(p).ok());
                    (true, palm.is_some_and(|p| person.palms.contains(&p)))
                }
                Some(ReaderMode::CardPin) => (
                    true,
                    match (&presented.pin, &person.pin_hash) {
                        (Some(pin), Some(h)) => crate::auth::verify_secret(pin, h),
                        _ => false,
                    },
                ),
                _ => (false, true),
            },
            Target::Cabinet(_) => (false, true),
        };

        // Anti-passback (PHY-5): the area is the door's inner zone, across all its doors.
        let area = self.doors.get(&d.door.unwrap_or(-1)).map(|x| x.inside);
        let area_info = area.and_then(|a| self.zones.get(&a));
        let apb = area_info.map_or(ApbMode::None, |z| z.apb);
        let known = facts.presence.filter(|(_, since)| {
            let reset = area_info.map_or(0, |z| z.apb_reset_minutes);
            reset <= 0 || now_ms - since < reset * 60_000
        });
        let apb_violation = match (apb, target, area) {
            (ApbMode::None, _, _) | (_, Target::Cabinet(_), _) | (_, _, None) => false,
            (_, Target::Reader(_), Some(area)) => match known {
                None => false,
                Some((z, _)) => {
                    if d.action == "door.enter" {
                        z == area
                    } else {
                        z != area
                    }
                }
            },
        };
        d.apb_violation = apb_violation;

        let inside_room = facts.presence.is_some_and(|(z, _)| z == zone_id);
        let high_security = d.action == "door.enter" && zone.is_some_and(|z| matches!(z.level, ZoneLevel::High | ZoneLevel::Server));
        let ciso_approved = person.approvals.iter().any(|(z, until)| *z == zone_id && until.is_none_or(|u| today <= u));
        let server_room = zone.is_some_and(|z| z.level == ZoneLevel::Server);
        let visit = person.visit.as_ref().filter(|v| v.from_ms <= now_ms && now_ms <= v.to_ms);
        let visit_zone_ok = visit.is_some_and(|v| v.zones.contains(&zone_id));
        let escorted = facts.host_escorting;
        let visit_ok = visit.is_some() && visit_zone_ok && escorted;
        let facts = [
            ("level_ok", level_ok),
            ("schedule_ok", schedule_ok),
            ("person_active", person_active),
            ("second_factor_required", second_factor_required),
            ("second_factor_ok", second_factor_ok),
            ("apb_violation", apb_violation),
            ("apb_hard", apb == ApbMode::Hard),
            ("inside_room", inside_room),
            ("high_security", high_security),
            ("ciso_approved", ciso_approved),
            ("server_room", server_room),
            ("visitor", person.visitor),
            ("visit_ok", visit_ok),
            ("visit_zone_ok", visit_zone_ok),
            ("escorted", escorted),
        ];
        let (allowed, rule) = policy.evaluate(&d.action, card.person, zone_id, &facts)?;
        d.allowed = allowed;
        d.rule = rule;
        Ok(d)
    }

    /// Identifies and decides in one step (the agent's offline path and the benchmark).
    pub fn decide_presented(
        &self,
        policy: &DoorPolicy,
        target: Target<'_>,
        presented: &Presented,
        facts: impl FnOnce(i64) -> Facts,
        now: DateTime<Utc>,
    ) -> Result<DoorDecision> {
        match self.identify(target, presented)? {
            Err(d) => Ok(d),
            Ok(card) => {
                let f = facts(card.person);
                self.decide(policy, target, presented, &card, f, now)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn level(days: &str, from: u32, to: u32, hol: bool) -> LevelInfo {
        LevelInfo { code: "L".into(), zones: vec![1], days: days.into(), from_min: from, to_min: to, on_holidays: hol }
    }

    #[test]
    fn schedules_are_in_japan_time_with_holidays() {
        // 2026-04-01 is a Wednesday; 23:30 UTC on 03-31 is 08:30 JST on 04-01.
        let at = Utc.with_ymd_and_hms(2026, 3, 31, 23, 30, 0).unwrap();
        let none = BTreeSet::new();
        assert!(level("3", 8 * 60, 20 * 60, false).admits(at, &none));
        assert!(!level("12", 8 * 60, 20 * 60, false).admits(at, &none), "Wednesday is 3");
        assert!(!level("3", 9 * 60, 20 * 60, false).admits(at, &none), "before 09:00");
        let hol: BTreeSet<_> = [NaiveDate::from_ymd_opt(2026, 4, 1).unwrap()].into();
        assert!(!level("3", 0, 1440, false).admits(at, &hol));
        assert!(level("3", 0, 1440, true).admits(at, &hol));
    }

    #[test]
    fn the_first_written_forbid_names_the_decision() {
        let p = DoorPolicy::new().unwrap();
        let facts = |sf: bool, ciso: bool| {
            vec![
                ("level_ok", true),
                ("schedule_ok", true),
                ("person_active", true),
                ("second_factor_required", true),
                ("second_factor_ok", sf),
                ("apb_violation", false),
                ("apb_hard", false),
                ("inside_room", false),
                ("high_security", true),
                ("ciso_approved", ciso),
                ("server_room", false),
                ("visitor", false),
                ("visit_ok", false),
                ("visit_zone_ok", false),
                ("escorted", false),
            ]
        };
        assert_eq!(p.evaluate("door.enter", 1, 1, &facts(false, false)).unwrap(), (false, "two-factor-required".into()));
        assert_eq!(p.evaluate("door.enter", 1, 1, &facts(true, false)).unwrap(), (false, "ciso-approval-required".into()));
        assert_eq!(p.evaluate("door.enter", 1, 1, &facts(true, true)).unwrap(), (true, "access-level".into()));
    }

    proptest! {
        /// Whatever the facts, a forbid that applies always wins (forbid overrides permit).
        #[test]
        fn forbid_overrides_permit(bits in proptest::collection::vec(any::<bool>(), 15)) {
            let names = ["level_ok", "schedule_ok", "person_active", "second_factor_required", "second_factor_ok",
                "apb_violation", "apb_hard", "inside_room", "high_security", "ciso_approved", "server_room",
                "visitor", "visit_ok", "visit_zone_ok", "escorted"];
            let facts: Vec<(&'static str, bool)> = names.iter().copied().zip(bits.iter().copied()).collect();
            let f = |k: &str| facts.iter().find(|(n, _)| *n == k).map(|x| x.1).unwrap();
            let p = DoorPolicy::new().unwrap();
            let (allowed, rule) = p.evaluate("door.enter", 1, 1, &facts).unwrap();
            let forbidden = !f("person_active")
                || (f("visitor") && f("server_room"))
                || (f("second_factor_required") && !f("second_factor_ok"))
                || (f("visitor") && (!f("visit_zone_ok") || !f("escorted")))
                || (f("level_ok") && !f("schedule_ok"))
                || (f("high_security") && !f("ciso_approved"))
                || (f("apb_violation") && f("apb_hard"));
            let permitted = (f("level_ok") && f("schedule_ok")) || (f("visitor") && f("visit_ok"));
            prop_assert_eq!(allowed, !forbidden && permitted, "rule {}", rule);
        }
    }
}
