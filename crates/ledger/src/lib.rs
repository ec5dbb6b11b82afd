//! mamori's ledger, pure: the Merkle tree (RFC 6962 / RFC 9162), canonical events, C2SP signed-note
//! checkpoints, whole-log verification and client export bundles. No storage, no clock, no I/O:
//! `mamori-core` stores entries and feeds them in.

pub mod event;
pub mod note;
pub mod tree;
pub mod verify;

pub use event::{Actor, Event, EventError, ObjectRef, Outcome, Place, Why};
pub use note::{Checkpoint, NoteError, NoteSigner, NoteVerifier};
pub use tree::{leaf_hash, node_hash, verify_consistency, verify_inclusion, Hash, ProofError, Tree};
pub use verify::{check_bundle, Bundle, BundleEntry, BundleReport, Frontier, LogSummary, LogVerifier, VerifyError, BUNDLE_FORMAT};
