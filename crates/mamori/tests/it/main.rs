//! mamori's one integration-test binary: the real server on port 0 with a fresh database, on
//! SQLite and on PostgreSQL; the real binary for the CLI; headless Chromium for the console.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod browser;
mod browser_doors;
mod browser_isms;
mod browser_vault;
mod cli;
mod doors;
mod isms;
mod ledger;
mod registers;
mod tls;
mod vault;
mod vault_cache;
