//! `reconfig migrate --from confd`: a confd configuration directory converted by the
//! migrator's confd front end (`reconfig_migrate::confd`), each converted template checked
//! with this crate's template compiler, the result written under `--out`.

use std::path::Path;

use reconfig_migrate::{MigrateError, Migration};

use crate::config::Pattern;
use crate::exit::{Exit, Fatal};
use crate::template::compile;

impl Fatal for MigrateError {
    fn exit(&self) -> Exit {
        match self {
            MigrateError::NotAConfigDir { .. } | MigrateError::OutRefused { .. } => Exit::Usage,
            MigrateError::Read { .. } | MigrateError::Write { .. } => Exit::Failed,
        }
    }
}

/// Converts the confd configuration in `confdir` and writes what converted under `out`,
/// which migrate creates, or an existing empty directory of the running user's that is
/// not a link (as for reconfig.rb's migration).
pub fn from_confd(confdir: &Path, out: &Path) -> Result<Migration, MigrateError> {
    let refuse = |reason: &str| MigrateError::OutRefused {
        path: out.to_path_buf(),
        reason: reason.to_string(),
    };
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(MigrateError::Write {
                path: out.to_path_buf(),
                source,
            })
        }
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(refuse(
                "a symbolic link; give a new directory, or an empty one that is not a link",
            ))
        }
        Ok(meta) if !meta.is_dir() => return Err(refuse("not a directory")),
        Ok(meta) => {
            use std::os::unix::fs::MetadataExt as _;
            let me = nix::unistd::geteuid().as_raw();
            if meta.uid() != me {
                return Err(refuse(&format!(
                    "owned by uid {}, not by the running user (uid {me}); give a new \
                     directory, or an empty one of your own",
                    meta.uid()
                )));
            }
            let mut entries = std::fs::read_dir(out).map_err(|source| MigrateError::Read {
                path: out.to_path_buf(),
                source,
            })?;
            if entries.next().is_some() {
                return Err(refuse("not empty; give a new directory, or an empty one"));
            }
        }
    }
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
