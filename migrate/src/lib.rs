//! Migrations into reconfig: another tool's configuration directory read, converted, and
//! either written as reconfig's entries and templates or reported, line by line, as
//! needing a person. Each front end (`confd`) reads its tool's layout into the one model
//! here: the files to write ([`Output`]) and what happened ([`Report`]: problems that stop
//! a file from being written, notes about what converted).
//!
//! The crate knows nothing of reconfig's template engine: a front end is given a
//! [`Check`] that tells whether a converted template compiles there.

pub mod confd;
mod report;

pub use report::{Finding, MigrateError, Outcome, Output, Report};

/// Checks that a converted template compiles with reconfig's engine: `Err` carries the
/// compiler's message. `name` is the template's file name, `text` its converted source.
pub type Check<'a> = &'a dyn Fn(&str, &str) -> Result<(), String>;

/// What a migration produced: the files to write and the report.
#[derive(Debug, Default)]
pub struct Migration {
    /// Files under the output directory.
    pub output: Output,
    /// What happened to each file, and what needs a person.
    pub report: Report,
}
