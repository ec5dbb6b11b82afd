//! Outgoing mail for reminders (MGMT-6) on lettre's SMTP transport. The address of the relay is
//! configured as a URL: `smtp://host:25` (plain, for a relay on the local network),
//! `smtp://host:587?tls=required` (STARTTLS) or `smtps://user:password@host:465`; a URL with a
//! password belongs in a file (`smtp_url_file`). Messages wait in the `mail_outbox` table, so a
//! relay that is down loses nothing; the job retries.

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::error::{CoreError, Result};

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    // The URL may carry a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from.to_string()).finish_non_exhaustive()
    }
}

impl Mailer {
    pub fn new(url: &str, from: &str) -> Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.trim())
            .map_err(|_| CoreError::Config("smtp_url is not a valid smtp:// or smtps:// URL".into()))?
            .timeout(Some(std::time::Duration::from_secs(20)))
            .build();
        let from = from.parse::<Mailbox>().map_err(|e| CoreError::Config(format!("mail_from: {e}")))?;
        Ok(Self { transport, from })
    }

    /// Sends one plain-text message (UTF-8).
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<()> {
        let to = to.parse::<Mailbox>().map_err(|e| CoreError::invalid("email", e.to_string()))?;
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| CoreError::Internal(format!("mail: {e}")))?;
        self.transport.send(msg).await.map_err(|e| CoreError::Internal(format!("smtp: {e}")))?;
        Ok(())
    }
}

/// Checks an e-mail address as people type it.
pub fn parse_address(s: &str) -> Result<String> {
    let s = s.trim();
    if s.len() > 254 || s.parse::<lettre::Address>().is_err() {
        return Err(CoreError::invalid("email", "not an e-mail address"));
    }
    Ok(s.to_owned())
}
