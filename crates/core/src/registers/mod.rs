//! Management registers (issue 6): the asset register, risk assessment and treatment, the
//! statement of applicability with live evidence, the monthly cycle (objectives,
//! self-inspections, re-inventory) with sign-off and reminders, people's records, vendors,
//! audits, incidents under the APPI, policy documents, chain of custody and the audit pack.

pub mod appi;
pub mod assets;
pub mod audits;
pub mod catalogue;
pub mod custody;
pub mod cycle;
pub mod documents;
pub mod evidence;
pub mod incidents;
pub mod pack;
pub mod people;
pub mod risk;
pub mod risks;
pub mod soa;
pub mod vendors;

use crate::error::{CoreError, Result};

/// A value that must be one of a closed list (a kind, a method, a stage …).
pub(crate) fn one_of<'a>(field: &str, value: &str, allowed: &[&'a str]) -> Result<&'a str> {
    allowed.iter().find(|a| **a == value).copied().ok_or_else(|| CoreError::invalid(field, format!("one of {}", allowed.join(", "))))
}

/// A free text of up to `max` characters (lines allowed, no other control characters), trimmed.
pub(crate) fn long_text(field: &str, s: &str, max: usize) -> Result<String> {
    let s = s.trim();
    if s.chars().count() > max || s.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(CoreError::invalid(field, format!("at most {max} characters of text")));
    }
    Ok(s.to_owned())
}
