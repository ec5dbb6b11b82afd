//! Physical access control (PHY-1 to PHY-12): doors, readers, cabinets, credentials, access
//! levels, CISO approvals, decisions, presence (anti-passback, interlock, occupancy), alarms,
//! visitors and the push channel to door agents.
//!
//! Invariants:
//! - every decision and every change appends its ledger event in the same transaction;
//! - presence moves only by compare-and-set on (zone, since), so two readers of one area
//!   presented at the same instant cannot both let a person in;
//! - a revocation updates the live rules and is pushed to connected agents before the call returns.

pub mod card;
pub mod rules;
mod service;
pub mod visitors;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::error::{CoreError, Result};
pub use card::{CardFormat, CardNumber};
pub use rules::{ApbMode, Direction, DoorDecision, DoorPolicy, Facts, Presented, ReaderMode, Rules, Target, OUTSIDE};
pub use service::*;

/// What the server pushes to connected door agents (server-sent events).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentPush {
    /// These cards stop working now (PHY-7); fetch the rules of `version` next.
    Revoke { version: u64, cards: Vec<String>, person: i64 },
    /// The rules changed; fetch them.
    Rules { version: u64 },
}

/// Alarm kinds (PHY-5, PHY-8, PHY-9 and reader supervision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    DoorForced,
    DoorHeldOpen,
    AntiPassback,
    Tailgating,
    RepeatedDenials,
    ReaderOffline,
    ReaderTamper,
    VisitorCardNotReturned,
}

impl AlarmKind {
    pub const ALL: &'static [AlarmKind] = &[
        AlarmKind::DoorForced,
        AlarmKind::DoorHeldOpen,
        AlarmKind::AntiPassback,
        AlarmKind::Tailgating,
        AlarmKind::RepeatedDenials,
        AlarmKind::ReaderOffline,
        AlarmKind::ReaderTamper,
        AlarmKind::VisitorCardNotReturned,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmKind::DoorForced => "door_forced",
            AlarmKind::DoorHeldOpen => "door_held_open",
            AlarmKind::AntiPassback => "anti_passback",
            AlarmKind::Tailgating => "tailgating",
            AlarmKind::RepeatedDenials => "repeated_denials",
            AlarmKind::ReaderOffline => "reader_offline",
            AlarmKind::ReaderTamper => "reader_tamper",
            AlarmKind::VisitorCardNotReturned => "visitor_card_not_returned",
        }
    }
    pub fn label(self, lang: &str) -> &'static str {
        let en = lang == "en";
        match self {
            AlarmKind::DoorForced => if en { "Door forced open" } else { "扉のこじ開け" },
            AlarmKind::DoorHeldOpen => if en { "Door held open" } else { "扉の開放放置" },
            AlarmKind::AntiPassback => if en { "Anti-passback violation" } else { "アンチパスバック違反" },
            AlarmKind::Tailgating => if en { "Tailgating" } else { "共連れ" },
            AlarmKind::RepeatedDenials => if en { "Repeated denials" } else { "認証拒否の繰り返し" },
            AlarmKind::ReaderOffline => if en { "Reader offline" } else { "リーダー通信断" },
            AlarmKind::ReaderTamper => if en { "Reader tampered" } else { "リーダーのいたずら" },
            AlarmKind::VisitorCardNotReturned => if en { "Visitor card not returned" } else { "来訪者カード未返却" },
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s).ok_or_else(|| CoreError::invalid("kind", format!("unknown alarm kind {s:?}")))
    }
}

/// How long a host's passage lets their visitor follow through the same door (PHY-9).
pub const ESCORT_WINDOW_MS: i64 = 60_000;
/// Denials of one card within this window that raise an alarm.
pub const DENIAL_WINDOW_MS: i64 = 60_000;
pub const DENIALS_FOR_ALARM: usize = 3;

#[derive(Debug, Clone, Copy)]
struct Grant {
    person: i64,
    at_ms: i64,
    consumed: bool,
}

/// The in-memory side of doors: the live rules, the policy, the push channel, and the short
/// windows of recent grants and denials (escort, tailgating, repeated denials).
pub struct DoorState {
    pub policy: DoorPolicy,
    rules: RwLock<Arc<Rules>>,
    /// Cards revoked since the live rules were built: refused at once, without waiting for
    /// (or copying) the rules of 50,000 people. An entry leaves when rebuilt rules agree.
    revoked: RwLock<std::collections::HashSet<String>>,
    push: broadcast::Sender<AgentPush>,
    grants: Mutex<HashMap<i64, VecDeque<Grant>>>,
    denials: Mutex<HashMap<String, VecDeque<i64>>>,
    /// Serialises rule rebuilds so that versions only grow.
    rebuild: tokio::sync::Mutex<()>,
}

impl DoorState {
    pub fn new() -> Result<Self> {
        let (push, _) = broadcast::channel(1024);
        Ok(Self {
            policy: DoorPolicy::new()?,
            rules: RwLock::new(Arc::new(Rules::default())),
            revoked: RwLock::new(std::collections::HashSet::new()),
            push,
            grants: Mutex::new(HashMap::new()),
            denials: Mutex::new(HashMap::new()),
            rebuild: tokio::sync::Mutex::new(()),
        })
    }

    /// The live rules.
    pub fn rules(&self) -> Arc<Rules> {
        self.rules.read().map(|r| r.clone()).unwrap_or_default()
    }

    fn set_rules(&self, r: Rules) {
        if let Ok(mut rev) = self.revoked.write() {
            rev.retain(|k| r.cards.get(k).is_some_and(|c| c.active));
        }
        if let Ok(mut g) = self.rules.write() {
            *g = Arc::new(r);
        }
    }

    /// Whether `card` was revoked after the live rules were built.
    pub fn is_revoked(&self, card: &str) -> bool {
        self.revoked.read().is_ok_and(|r| r.contains(card))
    }

    fn revoke_now(&self, cards: &[String]) {
        if let Ok(mut rev) = self.revoked.write() {
            rev.extend(cards.iter().cloned());
        }
    }

    /// A receiver of pushes for one connected agent.
    pub fn subscribe(&self) -> broadcast::Receiver<AgentPush> {
        self.push.subscribe()
    }

    fn send(&self, p: AgentPush) {
        // No agent connected is not an error.
        let _ = self.push.send(p);
    }

    fn note_grant(&self, door: i64, person: i64, at_ms: i64) {
        if let Ok(mut g) = self.grants.lock() {
            let q = g.entry(door).or_default();
            q.push_back(Grant { person, at_ms, consumed: false });
            while q.len() > 64 || q.front().is_some_and(|x| at_ms - x.at_ms > 10 * 60_000) {
                q.pop_front();
            }
        }
    }

    fn host_passed(&self, door: i64, host: i64, now_ms: i64) -> bool {
        self.grants.lock().is_ok_and(|g| {
            g.get(&door).is_some_and(|q| q.iter().any(|x| x.person == host && now_ms - x.at_ms <= ESCORT_WINDOW_MS && x.at_ms <= now_ms))
        })
    }

    /// Consumes one unconsumed grant at `door` given within `window_ms`; false: a passage
    /// without a grant (tailgating, PHY-8).
    fn consume_grant(&self, door: i64, now_ms: i64, window_ms: i64) -> bool {
        let Ok(mut g) = self.grants.lock() else { return false };
        let Some(q) = g.get_mut(&door) else { return false };
        if let Some(x) = q.iter_mut().find(|x| !x.consumed && now_ms - x.at_ms <= window_ms) {
            x.consumed = true;
            return true;
        }
        false
    }

    /// Records a denial; true when it makes `DENIALS_FOR_ALARM` within the window.
    fn note_denial(&self, key: &str, now_ms: i64) -> bool {
        let Ok(mut d) = self.denials.lock() else { return false };
        let q = d.entry(key.to_owned()).or_default();
        q.push_back(now_ms);
        while q.front().is_some_and(|t| now_ms - t > DENIAL_WINDOW_MS) {
            q.pop_front();
        }
        if q.len() >= DENIALS_FOR_ALARM {
            q.clear();
            return true;
        }
        false
    }
}
