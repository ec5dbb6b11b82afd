//! Risk values (MGMT-4).
//!
//! - The seed's formula: risk value = asset value × threat × vulnerability, each 1 to 3, where the
//!   asset value is by default the highest of its confidentiality, integrity and availability
//!   ratings; values 1 to 27, placed in configurable acceptance bands (by default 20–27 high,
//!   10–19 medium, 1–9 low).
//! - The IPA small-business method (中小企業の情報セキュリティ対策ガイドライン, risk analysis
//!   sheet): the likelihood of damage (被害発生可能性) comes from the threat's likelihood and the
//!   vulnerability by the IPA conversion table, and the risk value is importance × likelihood
//!   (1 to 9).

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// A rating from 1 to 3 (C, I, A, threat, vulnerability, importance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Rating(u8);

impl TryFrom<u8> for Rating {
    type Error = CoreError;
    fn try_from(v: u8) -> Result<Self> {
        if (1..=3).contains(&v) {
            Ok(Self(v))
        } else {
            Err(CoreError::invalid("rating", "1, 2 or 3"))
        }
    }
}

impl From<Rating> for u8 {
    fn from(r: Rating) -> u8 {
        r.0
    }
}

impl Rating {
    pub fn get(self) -> u8 {
        self.0
    }
}

/// C/I/A ratings of an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cia {
    pub c: Rating,
    pub i: Rating,
    pub a: Rating,
}

impl Cia {
    /// The asset value by default: the highest of the three.
    pub fn value(self) -> Rating {
        self.c.max(self.i).max(self.a)
    }
}

/// The seed's risk value: asset value × threat × vulnerability (1 to 27).
pub fn risk_value(asset: Rating, threat: Rating, vulnerability: Rating) -> u8 {
    asset.0 * threat.0 * vulnerability.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Low,
    Medium,
    High,
}

/// Acceptance bands: values at or above `high_from` are high, at or above `medium_from` medium,
/// the rest low.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bands {
    pub medium_from: u8,
    pub high_from: u8,
}

impl Default for Bands {
    /// 20–27 high, 10–19 medium, 1–9 low.
    fn default() -> Self {
        Self { medium_from: 10, high_from: 20 }
    }
}

impl Bands {
    pub fn new(medium_from: u8, high_from: u8) -> Result<Self> {
        if !(2..=27).contains(&medium_from) || high_from <= medium_from || high_from > 27 {
            return Err(CoreError::invalid("bands", "1 < medium ≤ high ≤ 27, medium below high"));
        }
        Ok(Self { medium_from, high_from })
    }
    pub fn level(&self, value: u8) -> Level {
        if value >= self.high_from {
            Level::High
        } else if value >= self.medium_from {
            Level::Medium
        } else {
            Level::Low
        }
    }
}

/// The IPA conversion table: likelihood of damage from the threat's likelihood (起こりやすさ)
/// and the vulnerability (つけ込みやすさ).
///
/// | threat \ vulnerability | 3 | 2 | 1 |
/// |---|---|---|---|
/// | 3 | 3 | 2 | 1 |
/// | 2 | 2 | 1 | 1 |
/// | 1 | 1 | 1 | 1 |
pub fn ipa_likelihood(threat: Rating, vulnerability: Rating) -> Rating {
    let v = match (threat.0, vulnerability.0) {
        (3, 3) => 3,
        (3, 2) | (2, 3) => 2,
        _ => 1,
    };
    Rating(v)
}

/// The IPA risk value: importance × likelihood of damage (1 to 9).
pub fn ipa_risk_value(importance: Rating, threat: Rating, vulnerability: Rating) -> u8 {
    importance.0 * ipa_likelihood(threat, vulnerability).0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(v: u8) -> Rating {
        Rating::try_from(v).unwrap()
    }

    #[test]
    fn the_seed_s_worked_example() {
        // Asset value 3 (max of C=3, I=2, A=1), threat 2, vulnerability 3: 18, medium.
        let cia = Cia { c: r(3), i: r(2), a: r(1) };
        assert_eq!(cia.value(), r(3));
        let v = risk_value(cia.value(), r(2), r(3));
        assert_eq!(v, 18);
        let b = Bands::default();
        assert_eq!(b.level(18), Level::Medium);
        assert_eq!((b.level(27), b.level(20), b.level(19), b.level(10), b.level(9), b.level(1)), (Level::High, Level::High, Level::Medium, Level::Medium, Level::Low, Level::Low));
        assert_eq!(Bands::new(8, 16).unwrap().level(18), Level::High, "configurable");
        assert!(Bands::new(20, 10).is_err());
        assert!(Rating::try_from(0).is_err() && Rating::try_from(4).is_err());
    }

    #[test]
    fn the_ipa_table() {
        let table = [[3, 2, 1], [2, 1, 1], [1, 1, 1]]; // rows: threat 3, 2, 1; columns: vulnerability 3, 2, 1
        for (ti, t) in [3u8, 2, 1].iter().enumerate() {
            for (vi, v) in [3u8, 2, 1].iter().enumerate() {
                assert_eq!(ipa_likelihood(r(*t), r(*v)).get(), table[ti][vi], "threat {t} vulnerability {v}");
            }
        }
        // The IPA's examples: threat 2 and vulnerability 2 give 1; threat 3 and vulnerability 2 give 2.
        assert_eq!(ipa_likelihood(r(2), r(2)).get(), 1);
        assert_eq!(ipa_likelihood(r(3), r(2)).get(), 2);
        assert_eq!(ipa_risk_value(r(3), r(3), r(3)), 9);
        assert_eq!(ipa_risk_value(r(2), r(3), r(2)), 4);
    }

    proptest! {
        #[test]
        fn values_stay_in_range_and_grow_with_each_factor(a in 1u8..=3, t in 1u8..=3, v in 1u8..=3) {
            let x = risk_value(r(a), r(t), r(v));
            prop_assert!((1..=27).contains(&x));
            if a < 3 { prop_assert!(risk_value(r(a + 1), r(t), r(v)) > x); }
            let y = ipa_risk_value(r(a), r(t), r(v));
            prop_assert!((1..=9).contains(&y));
            if v < 3 { prop_assert!(ipa_risk_value(r(a), r(t), r(v + 1)) >= y); }
        }
    }
}
