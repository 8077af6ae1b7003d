//! `reconfig migrate`, converting reconfig.rb's configuration or, `--from confd`, confd's:
//! the `reconfig-migrate` crate's front ends, handed this crate's template engine (which
//! the migrator cannot depend on) to read an entry's `pattern` and to compile each
//! converted template with; and the exit status of a migration that cannot run.

use reconfig_migrate::{Conversion, Delimiters, Engine, MigrateError, Refused, Report};

use crate::config::Pattern;
use crate::exit::{Exit, Fatal};
use crate::template::compile;

/// A migration that stops has written no report: the configuration or `OUT` cannot be used
/// as given, whatever the cause.
impl Fatal for MigrateError {
    fn exit(&self) -> Exit {
        Exit::Usage
    }
}

/// Runs `conversion` with reconfig's template engine: the report, or why it could not run.
pub fn migrate(conversion: &Conversion) -> Result<Report, MigrateError> {
    conversion.run(&Templates)
}

/// reconfig's templates, as the migrator asks about them.
struct Templates;

impl Engine for Templates {
    fn delimiters(&self, pattern: &str) -> Result<Delimiters, String> {
        let Pattern { open, close } = Pattern::parse(pattern).map_err(|e| e.to_string())?;
        Ok(Delimiters { open, close })
    }

    fn compiles(&self, name: &str, text: &str, delimiters: &Delimiters) -> Result<(), Refused> {
        let pattern = Pattern {
            open: delimiters.open.clone(),
            close: delimiters.close.clone(),
        };
        compile(name, text, &pattern)
            .map(|_| ())
            .map_err(|e| Refused {
                line: e.line(),
                message: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use reconfig_migrate::Destination;

    use super::*;
    use crate::config::{parse_entry, TemplateDir};

    /// What the migrator writes is what reconfig reads: an entry whose reloads wait up to
    /// 10 s, as reconfig.rb's did.
    #[test]
    fn reconfig_reads_the_written_splay_as_ten_seconds() {
        let dir = tempfile::tempdir().unwrap();
        let cfgdir = dir.path().join("rb");
        std::fs::create_dir_all(cfgdir.join("conf.d")).unwrap();
        std::fs::create_dir_all(cfgdir.join("templates")).unwrap();
        std::fs::write(cfgdir.join("templates/t"), "x").unwrap();
        for (name, text) in [
            ("a.json", "{\n  \"key\": \"/k\",\n  \"source\": \"t\",\n  \"target\": \"/tmp/x\",\n  \"reloadcmd\": \"r\"\n}"),
            ("b.json", r#"{"key":"/k","source":"t","target":"/tmp/x","reloadcmd":"r"}"#),
        ] {
            std::fs::write(cfgdir.join("conf.d").join(name), text).unwrap();
        }
        let out = dir.path().join("out");
        let conversion = Conversion::ReconfigRb {
            cfgdir,
            into: Destination::Out(out.clone()),
        };
        let report = migrate(&conversion).unwrap();
        assert_eq!(report.notes.len(), 2, "{:?}", report.notes);
        let templates = TemplateDir::open(&out.join("templates")).unwrap();
        for name in ["a.json", "b.json"] {
            let file = Path::new("conf.d").join(name);
            let text = std::fs::read_to_string(out.join(&file)).unwrap();
            let entry = parse_entry(&file, &text, &templates, "").unwrap();
            assert_eq!(entry.splay, Duration::from_secs(10), "{text}");
        }
    }
}
