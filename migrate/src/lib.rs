//! Migrations into reconfig: another tool's configuration directory read, converted, and
//! either written as reconfig's entries and templates or reported, line by line, as
//! needing a person.
//!
//! Each front end — `reconfig_rb` (reconfig.rb's Ruby templates and JSON entries) and
//! `confd` (TOML resources and Go templates) — reads its tool's directory with `tree`,
//! which never follows a link, and converts it into the one model of a [`Migration`]: the
//! files to write (`output`, which also writes them, never through a link, each with the
//! mode and owner of the file it converts) and what happened ([`Report`]: problems that
//! stop a file from being written, notes about what converted, a summary). What only
//! reconfig can say — an entry's `pattern`, whether a converted template compiles — is
//! asked of the [`Engine`] the caller hands in: this crate does not depend on reconfig.

pub mod confd;
mod engine;
mod error;
mod output;
pub mod reconfig_rb;
mod report;
mod tree;

use std::path::PathBuf;

pub use engine::{Delimiters, Engine, Refused};
pub use error::{MigrateError, OutRefusal};
pub use output::Destination;
pub use report::{Finding, Outcome, Report};

use output::Output;
use tree::Config;

/// One run of the migrator: whose configuration, where it is, where the result goes.
#[derive(Debug, Clone)]
pub enum Conversion {
    /// reconfig.rb's directory (`conf.d/*.json`, Ruby templates), into a new directory or
    /// in place.
    ReconfigRb {
        /// The configuration directory.
        cfgdir: PathBuf,
        /// Where the converted files go.
        into: Destination,
    },
    /// confd's directory (`conf.d/*.toml`, Go templates, `confd.toml`), into a new
    /// directory: its files change names and kinds, so there is no converting in place.
    Confd {
        /// The configuration directory.
        cfgdir: PathBuf,
        /// The output directory.
        out: PathBuf,
    },
}

impl Conversion {
    /// Reads, converts and writes; the report says what happened to each file.
    pub fn run(&self, engine: &dyn Engine) -> Result<Report, MigrateError> {
        match self {
            Conversion::ReconfigRb { cfgdir, into } => reconfig_rb::migrate(cfgdir, into, engine),
            Conversion::Confd { cfgdir, out } => confd::migrate(cfgdir, out, engine),
        }
    }
}

/// A migration in progress: what it will write and what it found.
struct Migration {
    output: Output,
    report: Report,
}

impl Migration {
    /// A migration of `config`, whose links and special files are reported already: they
    /// are neither read nor written.
    fn of(config: &Config) -> Migration {
        let mut report = Report::default();
        for tree in [&config.top, &config.confd, &config.templates] {
            report.problems.extend(
                tree.skipped
                    .iter()
                    .map(|s| Finding::new(&tree.path.join(&s.rel), None, &s.reason)),
            );
        }
        Migration {
            output: Output::new(config.top.meta()),
            report,
        }
    }

    /// Writes the output `into` its destination and hands back the report, sorted.
    fn finish(mut self, into: &Destination) -> Result<Report, MigrateError> {
        self.output.write(into)?;
        self.report.sort();
        Ok(self.report)
    }
}
