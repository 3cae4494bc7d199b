//! CORE: the check of model-written SQL.
//!
//! [`check`] parses one statement with the PostgreSQL dialect, refuses everything but a
//! read-only query over allowlisted tables, columns and functions, rewrites the tree
//! (qualified table names, expanded `*`, a forced LIMIT) and returns the SQL re-serialized from
//! the checked tree, or every violation with a stable [`Code`]. For model-written SQL it also
//! returns the SQL to run, with compared integer literals lifted out as typed parameters
//! ([`literals`]).

mod check;
pub mod fingerprint;
mod functions;
pub mod literals;
pub mod roundtrip;
pub mod rowfilter;
mod violation;

pub use check::{Checked, KeptParses, OutputRedaction, ParamMode, check, check_keeping};
pub use functions::{DEFAULT_FUNCTIONS, DENIED_FUNCTIONS};
pub use violation::{Code, Violation};
