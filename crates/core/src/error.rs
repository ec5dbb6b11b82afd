//! The domain error of mamori-core. The web layer maps each variant to an HTTP status and a
//! safe message; nothing here carries a secret, SQL text or a path to the user.

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("sign-in failed")]
    AuthFailed,
    #[error("account temporarily locked")]
    Locked,
    #[error("authentication required")]
    Unauthenticated,
    #[error("re-authentication required")]
    ReauthRequired,
    #[error("not permitted")]
    Forbidden { rule: Option<String> },
    #[error("import rejected at line {line}: {message}")]
    Import { line: u64, message: String },
    #[error("database error")]
    Db(#[from] sqlx::Error),
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("ledger: {0}")]
    Ledger(String),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.to_owned(), message: message.into() }
    }

    /// Maps a unique-constraint violation to a conflict, other database errors unchanged.
    pub fn from_db_unique(e: sqlx::Error, what: &str) -> Self {
        if let sqlx::Error::Database(d) = &e {
            let msg = d.message().to_ascii_lowercase();
            if msg.contains("unique") || msg.contains("duplicate") {
                return Self::Conflict(format!("{what} already exists"));
            }
            if msg.contains("foreign key") {
                return Self::invalid(what, "refers to something that does not exist");
            }
        }
        Self::Db(e)
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
