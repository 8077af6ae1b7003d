//! `reconfig migrate --from confd`: a confd configuration directory converted by the
//! migrator's confd front end (`reconfig_migrate::confd`), each converted template checked
//! with this crate's template compiler, the result written under `--out`.

use std::path::Path;

use reconfig_migrate::{MigrateError, Migration};

use crate::cli::{Exit, Fatal};
use crate::config::Pattern;
use crate::template::compile;

impl Fatal for MigrateError {
    fn exit(&self) -> Exit {
        match self {
            MigrateError::NotAConfigDir { .. } => Exit::Usage,
            MigrateError::Read { .. } | MigrateError::Write { .. } => Exit::Failed,
        }
    }
}

/// Converts the confd configuration in `confdir` and writes what converted under `out`.
pub fn from_confd(confdir: &Path, out: &Path) -> Result<Migration, MigrateError> {
    let plain = Pattern::parse("{{ }}").expect("a valid pattern");
    let check = |name: &str, text: &str| {
        compile(name, text, &plain)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let migration = reconfig_migrate::confd::migrate(confdir, &check)?;
    migration.output.write_to(out)?;
    Ok(migration)
}
