//! Newtypes that parse instead of validate: once a value exists it is valid, and the API and the
//! CSV import reject anything else with a clear message (`#[serde(try_from = "String")]`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

macro_rules! closed_enum {
    ($(#[$m:meta])* $name:ident, $field:literal { $($var:ident => $s:literal, $ja:literal, $en:literal;)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub enum $name { $($var),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$var => $s),+ } }
            pub fn label(self, lang: &str) -> &'static str {
                match self { $($name::$var => if lang == "en" { $en } else { $ja }),+ }
            }
        }
        impl std::str::FromStr for $name {
            type Err = CoreError;
            fn from_str(s: &str) -> Result<Self, CoreError> {
                match s.trim() {
                    $($s | $ja => Ok($name::$var),)+
                    other => Err(CoreError::invalid($field, format!(
                        "unknown value {:?}; expected one of: {}", other, [$($s),+].join(", ")))),
                }
            }
        }
        impl TryFrom<String> for $name {
            type Error = CoreError;
            fn try_from(s: String) -> Result<Self, CoreError> { s.parse() }
        }
        impl From<$name> for String { fn from(v: $name) -> String { v.as_str().to_owned() } }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

closed_enum!(
    /// A console role. `admin` is the system administrator; the others are the roles of the seeds.
    Role, "role" {
    Admin => "admin", "システム管理者", "System administrator";
    Ciso => "ciso", "CISO", "CISO";
    InfoManager => "info_manager", "情報管理責任者", "Information manager";
    DeptManager => "dept_manager", "部門責任者", "Department manager";
    BusinessLead => "business_lead", "業務責任者", "Business lead";
    Operator => "operator", "オペレーター", "Operator";
    Secretariat => "secretariat", "事務局", "Secretariat";
    Auditor => "auditor", "内部監査員", "Internal auditor";
    Reception => "reception", "受付・警備", "Reception / guard";
    DoorAgent => "door_agent", "ドアエージェント", "Door agent";
});

closed_enum!(
    /// The security level of a zone (PHY-10).
    ZoneLevel, "level" {
    General => "general", "一般エリア", "General area";
    Work => "work", "執務エリア", "Work area";
    High => "high", "高セキュリティエリア", "High-security area";
    Server => "server", "サーバールーム", "Server room";
});

closed_enum!(PersonKind, "kind" {
    Employee => "employee", "社員", "Employee";
    Dispatched => "dispatched", "派遣社員", "Dispatched worker";
    PartTime => "part_time", "パート・アルバイト", "Part-timer";
    Visitor => "visitor", "来訪者", "Visitor";
});

closed_enum!(
    /// How sensitive a field of a business's records is (DATA-4, MYNUM-1).
    Sensitivity, "sensitivity" {
    Normal => "normal", "一般", "Normal";
    Personal => "personal", "個人情報", "Personal";
    Sensitive => "sensitive", "要配慮個人情報", "Sensitive";
    CardNumber => "card_number", "カード番号", "Card number";
    MyNumber => "my_number", "マイナンバー", "My Number";
});

closed_enum!(
    /// An operation on customer data, granted one by one (DATA-3).
    Op, "op" {
    Input => "input", "入力", "Input";
    View => "view", "閲覧", "View";
    Change => "change", "変更", "Change";
    Delete => "delete", "削除", "Delete";
    Copy => "copy", "複写", "Copy";
    Duplicate => "duplicate", "複製", "Duplicate";
    Download => "download", "ダウンロード", "Download";
    Print => "print", "印刷", "Print";
    Export => "export", "エクスポート", "Export";
});

closed_enum!(PersonStatus, "status" {
    Active => "active", "在籍", "Active";
    Suspended => "suspended", "休職", "Suspended";
    Left => "left", "退職", "Left";
});

fn check_len(field: &str, s: &str, min: usize, max: usize) -> Result<(), CoreError> {
    let n = s.chars().count();
    if n < min {
        return Err(CoreError::invalid(field, if min == 1 { "must not be empty".to_owned() } else { format!("must be at least {min} characters") }));
    }
    if n > max {
        return Err(CoreError::invalid(field, format!("must be at most {max} characters")));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(CoreError::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// A short identifier typed by people: `A-Z a-z 0-9 . _ -`, 1 to 40 characters
/// (zone codes, client and business codes, employee numbers, logins).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Code(String);

impl Code {
    pub fn parse(field: &str, s: &str) -> Result<Self, CoreError> {
        let s = s.trim();
        check_len(field, s, 1, 40)?;
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
            return Err(CoreError::invalid(field, "may contain only letters, digits, '.', '_' and '-'"));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for Code {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, CoreError> {
        Self::parse("code", &s)
    }
}
impl From<Code> for String {
    fn from(c: Code) -> String {
        c.0
    }
}
impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display text (a name, a title): trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Text(String);

impl Text {
    pub fn parse(field: &str, s: &str) -> Result<Self, CoreError> {
        let s = s.trim();
        check_len(field, s, 1, 200)?;
        Ok(Self(s.to_owned()))
    }
    /// Optional text: empty means none.
    pub fn parse_opt(field: &str, s: &str) -> Result<Option<Self>, CoreError> {
        if s.trim().is_empty() { Ok(None) } else { Self::parse(field, s).map(Some) }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for Text {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, CoreError> {
        Self::parse("text", &s)
    }
}
impl From<Text> for String {
    fn from(c: Text) -> String {
        c.0
    }
}

/// A calendar date `YYYY-MM-DD` (also accepts `YYYY/MM/DD` as Japanese HR systems export it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Date(chrono::NaiveDate);

impl Date {
    pub fn parse(field: &str, s: &str) -> Result<Self, CoreError> {
        let s = s.trim();
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .or_else(|_| chrono::NaiveDate::parse_from_str(s, "%Y/%m/%d"))
            .map(Self)
            .map_err(|_| CoreError::invalid(field, format!("{s:?} is not a date (YYYY-MM-DD)")))
    }
    pub fn parse_opt(field: &str, s: &str) -> Result<Option<Self>, CoreError> {
        if s.trim().is_empty() { Ok(None) } else { Self::parse(field, s).map(Some) }
    }
    pub fn naive(self) -> chrono::NaiveDate {
        self.0
    }
}
impl TryFrom<String> for Date {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, CoreError> {
        Self::parse("date", &s)
    }
}
impl From<Date> for String {
    fn from(d: Date) -> String {
        d.to_string()
    }
}
impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

/// A password as typed: 12 to 128 characters (NIST SP 800-63B), no composition rules; never
/// printed by `Debug`.
pub struct Password(zeroize::Zeroizing<String>);

const COMMON_PASSWORDS: &[&str] = &[
    "password1234", "123456789012", "qwertyuiopas", "passwordpassword", "aaaaaaaaaaaa",
    "111111111111", "000000000000", "iloveyou1234", "password123!", "adminadmin12",
    "welcome12345", "letmein12345", "changeme1234", "qwerty123456", "abcdefghijkl",
];

impl Password {
    /// Parses a new password for `login`.
    pub fn new(s: &str, login: &str) -> Result<Self, CoreError> {
        let n = s.chars().count();
        if n < 12 {
            return Err(CoreError::invalid("password", "must be at least 12 characters"));
        }
        if n > 128 {
            return Err(CoreError::invalid("password", "must be at most 128 characters"));
        }
        let lower = s.to_lowercase();
        if lower == login.to_lowercase() || lower.contains(&login.to_lowercase()) && login.len() >= 4 {
            return Err(CoreError::invalid("password", "must not contain the login name"));
        }
        if COMMON_PASSWORDS.contains(&lower.as_str()) {
            return Err(CoreError::invalid("password", "is too common"));
        }
        Ok(Self(zeroize::Zeroizing::new(s.to_owned())))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn enums_parse_english_and_japanese() {
        assert_eq!("high".parse::<ZoneLevel>().unwrap(), ZoneLevel::High);
        assert_eq!("高セキュリティエリア".parse::<ZoneLevel>().unwrap(), ZoneLevel::High);
        assert_eq!("派遣社員".parse::<PersonKind>().unwrap(), PersonKind::Dispatched);
        assert!("superuser".parse::<Role>().is_err());
    }

    #[test]
    fn passwords_follow_sp800_63b() {
        assert!(Password::new("short", "x").is_err());
        assert!(Password::new(&"a".repeat(129), "x").is_err());
        assert!(Password::new("password1234", "x").is_err());
        assert!(Password::new("yamada-taro-2026", "yamada").is_err());
        assert!(Password::new("correct horse battery", "yamada").is_ok());
        assert_eq!(format!("{:?}", Password::new("correct horse battery", "y").unwrap()), "Password(***)");
    }

    #[test]
    fn dates_accept_slashes() {
        assert_eq!(Date::parse("d", "2026/04/01").unwrap().to_string(), "2026-04-01");
        assert!(Date::parse("d", "2026-13-01").is_err());
    }

    proptest! {
        #[test]
        fn code_parses_iff_valid(s in ".{0,50}") {
            let t = s.trim();
            let valid = !t.is_empty() && t.chars().count() <= 40
                && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            prop_assert_eq!(Code::parse("c", &s).is_ok(), valid);
        }
        #[test]
        fn text_never_holds_control_or_overlong(s in ".{0,250}") {
            if let Ok(t) = Text::parse("t", &s) {
                prop_assert!(t.as_str().chars().count() <= 200);
                prop_assert!(!t.as_str().chars().any(|c| c.is_control()));
                prop_assert!(!t.as_str().is_empty());
            }
        }
    }
}
