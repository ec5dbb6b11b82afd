//! The door agent (pure-Rust `osdp`) against simulated readers (LibOSDP), over the OSDP secure
//! channel, with the real server on SQLite and PostgreSQL: a day at a door, two factors,
//! revocation reaching the running agent, offline operation and catch-up; and hostile frames.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent;
mod hostile;
