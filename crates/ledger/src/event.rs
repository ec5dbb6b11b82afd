//! One ledger entry. The encoding is canonical and versioned: a version byte, then compact JSON
//! of [`Event`] with its fields in declaration order, absent options left out and free-form
//! details in a sorted map. [`Event::decode`] re-encodes and refuses any other spelling of the
//! same event, so a stored entry has exactly one valid byte string.
//!
//! Events carry only references to personal data (ids), never the data itself, so that
//! crypto-shredding a person's data later leaves the log verifiable.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Version byte of the current encoding.
pub const EVENT_V1: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("unknown event encoding version {0}")]
    Version(u8),
    #[error("empty entry")]
    Empty,
    #[error("entry is not valid event JSON: {0}")]
    Json(String),
    #[error("entry is not in canonical form")]
    NotCanonical,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// `user`, `token`, `device`, `system`, `person`.
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Place {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub allowed: bool,
    /// The rule (policy id) that decided, when a decision was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Why {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

/// One entry: who, what, where, when, outcome and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// UTC, RFC 3339 with milliseconds.
    pub ts: String,
    /// The same instant as shown in Japan (UTC+09:00).
    pub jst: String,
    pub actor: Actor,
    /// Dotted action name, e.g. `person.create`, `session.login_failed`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<Place>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<Why>,
    /// The client (委託元) whose log also holds this event, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, String>,
}

/// Formats an instant as the event's `ts` and `jst` strings.
pub fn timestamps(at: DateTime<Utc>) -> (String, String) {
    // Japan has had no daylight saving time since 1951: a fixed offset is exact.
    let jst = FixedOffset::east_opt(9 * 3600).map(|o| at.with_timezone(&o));
    let utc = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let jst = jst.map_or_else(|| utc.clone(), |j| j.to_rfc3339_opts(SecondsFormat::Millis, false));
    (utc, jst)
}

impl Event {
    /// A new allowed event by `actor` at `at`.
    pub fn new(at: DateTime<Utc>, actor: Actor, action: &str) -> Self {
        let (ts, jst) = timestamps(at);
        Self {
            ts,
            jst,
            actor,
            action: action.to_owned(),
            object: None,
            place: None,
            outcome: Outcome { allowed: true, rule: None },
            why: None,
            client: None,
            detail: BTreeMap::new(),
        }
    }

    pub fn object(mut self, kind: &str, id: impl ToString) -> Self {
        self.object = Some(ObjectRef { kind: kind.to_owned(), id: id.to_string() });
        self
    }

    pub fn denied(mut self, rule: Option<&str>) -> Self {
        self.outcome = Outcome { allowed: false, rule: rule.map(str::to_owned) };
        self
    }

    pub fn rule(mut self, rule: &str) -> Self {
        self.outcome.rule = Some(rule.to_owned());
        self
    }

    pub fn client(mut self, client: impl ToString) -> Self {
        self.client = Some(client.to_string());
        self
    }

    pub fn addr(mut self, addr: Option<String>) -> Self {
        if addr.is_some() {
            self.place.get_or_insert_with(Place::default).addr = addr;
        }
        self
    }

    /// Where: zone, door and terminal (reader, cabinet or workstation), by code.
    pub fn place(mut self, zone: Option<&str>, door: Option<&str>, terminal: Option<&str>) -> Self {
        let p = self.place.get_or_insert_with(Place::default);
        p.zone = zone.map(str::to_owned);
        p.door = door.map(str::to_owned);
        p.terminal = terminal.map(str::to_owned);
        self
    }

    pub fn detail(mut self, k: &str, v: impl ToString) -> Self {
        self.detail.insert(k.to_owned(), v.to_string());
        self
    }

    pub fn purpose(mut self, purpose: &str) -> Self {
        self.why.get_or_insert_with(Why::default).purpose = Some(purpose.to_owned());
        self
    }

    /// The canonical bytes: version byte, then compact JSON.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![EVENT_V1];
        // Serialising plain structs, strings and a BTreeMap cannot fail.
        if let Ok(json) = serde_json::to_vec(self) {
            out.extend_from_slice(&json);
        }
        out
    }

    /// Parses canonical bytes; any non-canonical spelling is refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, EventError> {
        let (&v, json) = bytes.split_first().ok_or(EventError::Empty)?;
        if v != EVENT_V1 {
            return Err(EventError::Version(v));
        }
        let ev: Event = serde_json::from_slice(json).map_err(|e| EventError::Json(e.to_string()))?;
        if ev.encode() != bytes {
            return Err(EventError::NotCanonical);
        }
        Ok(ev)
    }

    /// The instant of the event.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.ts).ok().map(|d| d.with_timezone(&Utc))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn ev() -> Event {
        let at = Utc.with_ymd_and_hms(2026, 4, 1, 0, 30, 0).unwrap();
        Event::new(at, Actor { kind: "user".into(), id: "1".into() }, "person.create")
            .object("person", 7)
            .detail("b", "2")
            .detail("a", "1")
    }

    #[test]
    fn japan_time_is_shown() {
        let e = ev();
        assert_eq!(e.ts, "2026-04-01T00:30:00.000Z");
        assert_eq!(e.jst, "2026-04-01T09:30:00.000+09:00");
    }

    #[test]
    fn encoding_is_canonical() {
        let e = ev();
        let b = e.encode();
        assert_eq!(Event::decode(&b).unwrap(), e);
        // same content, other spelling: refused
        let mut spaced = vec![EVENT_V1];
        spaced.extend_from_slice(serde_json::to_string_pretty(&e).unwrap().as_bytes());
        assert_eq!(Event::decode(&spaced), Err(EventError::NotCanonical));
        let mut v2 = b.clone();
        v2[0] = 2;
        assert_eq!(Event::decode(&v2), Err(EventError::Version(2)));
    }

    proptest! {
        #[test]
        fn any_event_roundtrips(action in "[a-z._]{1,20}", k in "[a-z]{1,5}", v in ".{0,20}", id in any::<i64>(), allowed in any::<bool>()) {
            let mut e = ev().detail(&k, &v).object("x", id);
            e.action = action;
            e.outcome.allowed = allowed;
            let b = e.encode();
            prop_assert_eq!(Event::decode(&b).unwrap(), e);
        }
    }
}
