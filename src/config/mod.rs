//! Where the data path starts: loading and validating the `conf.d` entries, each naming a
//! key, a template with its delimiters ([`Pattern`]), a target and its commands.
//!
//! Each `conf.d/*.json` file, in name order, describes one target. A bad entry is reported
//! on one line naming its file and the reason, then skipped, so that one typo never stops
//! the other targets from being kept up to date.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Map, Value};

mod duration;
mod limits;
mod pattern;
mod rollout;
mod source;

use duration::json_duration;
pub use duration::parse_duration;
pub use limits::{parse_depth, parse_size, LimitOverrides, RenderLimits, MAX_DEPTH};
pub use pattern::{Pattern, PatternError};
pub use rollout::{check_name, parse_rollout_prefix, RolloutSpec, DEFAULT_ROLLOUT_PREFIX};
pub use source::{SourceError, TemplateDir};

/// Default time a check or reload command may take before its process group is killed.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// One validated `conf.d` entry: where data comes from, how it renders, where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Name used in logs and metrics.
    pub id: String,
    /// The `conf.d` file this entry came from.
    pub file: PathBuf,
    /// The watched etcd key, `--prefix` applied and slashes squeezed.
    pub key: String,
    /// The template file (`templates/<source>`).
    pub template: PathBuf,
    /// The file kept in step.
    pub target: PathBuf,
    /// Whether `data` is the whole tree under `key`.
    pub recursive: bool,
    /// Extra trees read at every render (name → key, no prefix applied).
    pub altkeys: BTreeMap<String, String>,
    /// More watched keys, read with `key` at every render (prefixes applied): confd's
    /// `keys`.
    pub keys: Vec<String>,
    /// The entry's own prefix, `--prefix` applied: prepended to `key` and `keys`, and what
    /// confd's functions (`go_getv`, `go_ls`, … in templates converted from confd) take
    /// keys relative to.
    pub prefix: Option<String>,
    /// Template tag delimiters.
    pub pattern: Pattern,
    /// Command that must succeed before a new file is kept.
    pub checkcmd: Option<String>,
    /// Command run after the file changed.
    pub reloadcmd: Option<String>,
    /// Mode for the target; default: the existing file's, else 0644.
    pub mode: Option<u32>,
    /// Owner for the target; default: the existing file's, else the running user.
    pub owner: Option<String>,
    /// Group for the target; default: the existing file's, else the running user's.
    pub group: Option<String>,
    /// Longest random delay before `reloadcmd`, to spread reloads across a fleet.
    pub splay: Duration,
    /// Quiet time to wait for after a change before rendering (daemon mode).
    pub debounce: Option<Duration>,
    /// Least time between two reloads of this entry's service (the daemon's
    /// `--reload-interval` when unset).
    pub reload_interval: Option<Duration>,
    /// Time limit for `checkcmd`.
    pub check_timeout: Duration,
    /// Time limit for `reloadcmd`.
    pub reload_timeout: Duration,
    /// Whether `altkeys` are watched too (reconfig.rb only read them).
    pub watchaltkeys: bool,
    /// Signal for the supervised child after this entry's target changed.
    pub reloadsignal: Option<Signal>,
    /// The entry's own render limits, over the process-wide ones.
    pub limits: LimitOverrides,
    /// How its changes reach the fleet, coordinated with the nodes of its group (none:
    /// each node applies a change at once, on its own). Boxed: most entries have none.
    pub rollout: Option<Box<RolloutSpec>>,
}

impl Entry {
    /// Whether a change of the target is followed by a reload (a command or a signal).
    pub fn reloads(&self) -> bool {
        self.reloadcmd.is_some() || self.reloadsignal.is_some()
    }

    /// The keys whose trees one render reads: the watched key, then every altkey, then
    /// `keys`.
    pub fn read_keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.key.as_str())
            .chain(self.altkeys.values().map(String::as_str))
            .chain(self.keys.iter().map(String::as_str))
    }

    /// The keys whose changes re-render the entry: `key`, each of `keys`, and the altkeys
    /// when `watchaltkeys` is set.
    pub fn watched_keys(&self) -> impl Iterator<Item = &str> {
        let alt = self
            .altkeys
            .values()
            .filter(|_| self.watchaltkeys)
            .map(String::as_str);
        std::iter::once(self.key.as_str())
            .chain(self.keys.iter().map(String::as_str))
            .chain(alt)
    }
}

/// A `conf.d` file that was skipped, and why.
#[derive(Debug)]
pub struct Problem {
    /// The entry file.
    pub file: PathBuf,
    /// What is wrong with it.
    pub reason: EntryError,
}

/// Why an entry file was refused.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// The file cannot be read.
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    /// The file is not JSON.
    #[error("malformed JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// A field is missing or wrong; the message names it.
    #[error("{0}")]
    Field(String),
    /// Several fields are wrong, each message naming its field (one line each where
    /// problems are listed).
    #[error("{}", .0.join("; "))]
    Fields(Vec<String>),
    /// `source` names no template inside `templates/`.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Another entry writes the same target.
    #[error("target {} is already claimed by {}", .target.display(), .other.display())]
    TargetTaken {
        /// The target.
        target: PathBuf,
        /// The entry file that claimed it first.
        other: PathBuf,
    },
    /// Another entry has the same id.
    #[error("id {id:?} is already used by {}", .other.display())]
    IdTaken {
        /// The id.
        id: String,
        /// The entry file that used it first.
        other: PathBuf,
    },
    /// Another entry of this node takes part in the same rollout group: a node is one
    /// member of a group.
    #[error("rollout.group {group:?} is already used by {} (one entry per group on a node)", .other.display())]
    GroupTaken {
        /// The group.
        group: String,
        /// The entry file that used it first.
        other: PathBuf,
    },
}

impl From<String> for EntryError {
    fn from(message: String) -> EntryError {
        EntryError::Field(message)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.reason)
    }
}

/// The result of reading `conf.d`: the entries that will run and the ones that were skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Valid entries, in file-name order.
    pub entries: Vec<Entry>,
    /// Invalid entries, one problem each.
    pub problems: Vec<Problem>,
}

/// Why the configuration directory as a whole is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `cfgdir` must hold `conf.d/` and `templates/`.
    #[error("{}: not a directory (the config dir needs conf.d/ and templates/)", .0.display())]
    NotADir(PathBuf),
    /// `conf.d/` cannot be listed, or `templates/` resolved.
    #[error("{}: {source}", .path.display())]
    List {
        /// The directory.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// `--prefix` must be an absolute etcd key.
    #[error("invalid prefix {0:?}: it must begin with '/'")]
    Prefix(String),
}

/// Checks a `--prefix` value: empty, or an absolute key.
pub fn validate_prefix(prefix: &str) -> Result<(), ConfigError> {
    if prefix.is_empty() || prefix.starts_with('/') {
        Ok(())
    } else {
        Err(ConfigError::Prefix(prefix.to_string()))
    }
}

/// Joins prefix and key and squeezes repeated slashes; drops a trailing slash except on `/`.
pub fn normalize_key(prefix: &str, key: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + key.len());
    for c in prefix
        .chars()
        .chain(std::iter::once('/'))
        .chain(key.chars())
    {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    if out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    out
}

/// Reads every `cfgdir/conf.d/*.json` entry; templates live in `cfgdir/templates`.
pub fn load(cfgdir: &Path, prefix: &str) -> Result<Loaded, ConfigError> {
    validate_prefix(prefix)?;
    let confd = cfgdir.join("conf.d");
    let templates = cfgdir.join("templates");
    for dir in [&confd, &templates] {
        if !dir.is_dir() {
            return Err(ConfigError::NotADir(dir.clone()));
        }
    }
    let templates = TemplateDir::open(&templates).map_err(|source| ConfigError::List {
        path: templates.clone(),
        source,
    })?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&confd)
        .map_err(|source| ConfigError::List {
            path: confd.clone(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();

    let mut loaded = Loaded::default();
    let mut targets: HashMap<PathBuf, PathBuf> = HashMap::new();
    let mut ids: HashMap<String, PathBuf> = HashMap::new();
    let mut groups: HashMap<String, PathBuf> = HashMap::new();
    for file in files {
        let parsed = std::fs::read_to_string(&file)
            .map_err(EntryError::Read)
            .and_then(|text| parse_entry(&file, &text, &templates, prefix));
        let checked = parsed.and_then(|entry| {
            if let Some(other) = targets.get(&entry.target) {
                return Err(EntryError::TargetTaken {
                    target: entry.target.clone(),
                    other: other.clone(),
                });
            }
            if let Some(other) = ids.get(&entry.id) {
                return Err(EntryError::IdTaken {
                    id: entry.id.clone(),
                    other: other.clone(),
                });
            }
            let group = entry.rollout.as_ref().map(|r| &r.group);
            if let Some(other) = group.and_then(|g| groups.get(g)) {
                return Err(EntryError::GroupTaken {
                    group: group.cloned().unwrap_or_default(),
                    other: other.clone(),
                });
            }
            Ok(entry)
        });
        match checked {
            Ok(entry) => {
                targets.insert(entry.target.clone(), file.clone());
                ids.insert(entry.id.clone(), file.clone());
                if let Some(rollout) = &entry.rollout {
                    groups.insert(rollout.group.clone(), file.clone());
                }
                loaded.entries.push(entry);
            }
            Err(EntryError::Fields(reasons)) => {
                loaded
                    .problems
                    .extend(reasons.into_iter().map(|reason| Problem {
                        file: file.clone(),
                        reason: EntryError::Field(reason),
                    }))
            }
            Err(reason) => loaded.problems.push(Problem { file, reason }),
        }
    }
    Ok(loaded)
}

const KNOWN_FIELDS: &[&str] = &[
    "id",
    "key",
    "source",
    "target",
    "recursive",
    "altkeys",
    "pattern",
    "checkcmd",
    "reloadcmd",
    "mode",
    "owner",
    "group",
    "splay",
    "debounce",
    "reload_interval",
    "check_timeout",
    "reload_timeout",
    "watchaltkeys",
    "reloadsignal",
    "render_timeout",
    "render_max_iterations",
    "render_max_output",
    "render_max_depth",
    "rollout",
    "prefix",
];

/// Parses one entry file's text; the error is the one-line reason.
pub fn parse_entry(
    file: &Path,
    text: &str,
    templates: &TemplateDir,
    prefix: &str,
) -> Result<Entry, EntryError> {
    let value: Value = serde_json::from_str(text).map_err(EntryError::Json)?;
    let Value::Object(obj) = value else {
        return Err(EntryError::Field(
            "malformed entry: the file must hold one JSON object".into(),
        ));
    };
    let fields = Fields(&obj);
    if let Some(unknown) = obj.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
        tracing::warn!(file = %file.display(), "unknown field {unknown:?} ignored");
    }

    let confd_prefix = match fields.optional_str("prefix")? {
        Some(p) if !p.starts_with('/') => {
            return Err(format!("prefix {p:?} must begin with '/'").into())
        }
        Some(p) => Some(normalize_key(prefix, p)),
        None => None,
    };
    // `--prefix`, then the entry's `prefix`, before `key` and each of `keys`.
    let key_prefix = confd_prefix.as_deref().unwrap_or(prefix);
    let mut keys = match obj.get("keys") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items
            .iter()
            .map(|k| match k {
                Value::String(k) if k.starts_with('/') => Ok(normalize_key(key_prefix, k)),
                _ => Err("keys must be a list of key strings beginning with '/'".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err("keys must be a list of key strings beginning with '/'"
                .to_string()
                .into())
        }
    };
    let key = match fields.optional_str("key")? {
        Some(raw) if !raw.starts_with('/') => {
            return Err(format!("key {raw:?} must begin with '/'").into());
        }
        Some(raw) if !raw.is_empty() => normalize_key(key_prefix, raw),
        _ if !keys.is_empty() => keys.remove(0),
        _ => {
            return Err("missing required field \"key\" (or \"keys\")"
                .to_string()
                .into())
        }
    };
    // A key read twice is read once (confd's resources may list one several times).
    let mut seen = BTreeSet::from([key.clone()]);
    keys.retain(|k| seen.insert(k.clone()));
    let template = templates.template(fields.required_str("source")?)?;
    let target = PathBuf::from(fields.required_str("target")?);
    if target.as_os_str().is_empty() || target.file_name().is_none() {
        return Err(format!("target {:?} is not a file path", target.display()).into());
    }
    let altkeys = match obj.get("altkeys") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(name, key)| match key {
                Value::String(k) if k.starts_with('/') => Ok((name.clone(), normalize_key("", k))),
                _ => Err(format!(
                    "altkeys.{name} must be a key string beginning with '/'"
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("altkeys must be an object of name → key".to_string().into()),
    };
    let pattern = match fields.optional_str("pattern")? {
        Some(p) => Pattern::parse(p).map_err(|e| e.to_string())?,
        None => Pattern::default(),
    };
    let mode = fields
        .optional_str("mode")?
        .map(|m| {
            u32::from_str_radix(m, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| format!("mode {m:?} must be an octal string like \"0640\""))
        })
        .transpose()?;
    let reloadsignal = fields
        .optional_str("reloadsignal")?
        .map(parse_signal)
        .transpose()?;
    let id = fields
        .optional_str("id")?
        .map(str::to_string)
        .unwrap_or_else(|| file.display().to_string());
    let rollout = rollout::parse(obj.get("rollout"), &id).map_err(EntryError::Fields)?;

    Ok(Entry {
        id,
        file: file.to_path_buf(),
        key,
        keys,
        template,
        target,
        recursive: fields.bool("recursive")?,
        altkeys,
        prefix: confd_prefix,
        pattern,
        checkcmd: fields.command("checkcmd")?,
        reloadcmd: fields.command("reloadcmd")?,
        mode,
        owner: fields.optional_str("owner")?.map(str::to_string),
        group: fields.optional_str("group")?.map(str::to_string),
        splay: fields.duration("splay")?.unwrap_or(Duration::ZERO),
        debounce: fields.duration("debounce")?,
        reload_interval: fields.duration("reload_interval")?,
        check_timeout: fields
            .duration("check_timeout")?
            .unwrap_or(DEFAULT_COMMAND_TIMEOUT),
        reload_timeout: fields
            .duration("reload_timeout")?
            .unwrap_or(DEFAULT_COMMAND_TIMEOUT),
        watchaltkeys: fields.bool("watchaltkeys")?,
        reloadsignal,
        limits: LimitOverrides {
            timeout: fields.duration("render_timeout")?,
            iterations: fields.count("render_max_iterations")?,
            output: fields.size("render_max_output")?,
            depth: fields
                .count("render_max_depth")?
                .map(|depth| {
                    u32::try_from(depth)
                        .ok()
                        .and_then(limits::check_depth)
                        .ok_or_else(|| {
                            format!("field \"render_max_depth\" must be from 1 to {MAX_DEPTH}")
                        })
                })
                .transpose()?,
        },
        rollout: rollout.map(Box::new),
    })
}

/// Accepts `SIGHUP`, `HUP` or `hup`.
pub fn parse_signal(name: &str) -> Result<Signal, String> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&full).map_err(|_| format!("unknown signal {name:?}"))
}

/// Typed access to an entry's JSON fields, each failure naming the field.
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn optional_str(&self, name: &str) -> Result<Option<&'a str>, String> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("field {name:?} must be a string")),
        }
    }

    fn required_str(&self, name: &str) -> Result<&'a str, String> {
        match self.optional_str(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(format!("missing required field {name:?}")),
        }
    }

    fn command(&self, name: &str) -> Result<Option<String>, String> {
        Ok(self
            .optional_str(name)?
            .filter(|c| !c.trim().is_empty())
            .map(str::to_string))
    }

    fn bool(&self, name: &str) -> Result<bool, String> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(format!("field {name:?} must be true or false")),
        }
    }

    fn count(&self, name: &str) -> Result<Option<u64>, String> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => Ok(n.as_u64()),
            Some(_) => Err(format!("field {name:?} must be a whole number above 0")),
        }
    }

    fn size(&self, name: &str) -> Result<Option<u64>, String> {
        match self.0.get(name) {
            Some(Value::String(s)) => parse_size(s)
                .map(Some)
                .map_err(|e| format!("field {name:?}: {e}")),
            _ => self.count(name),
        }
    }

    fn duration(&self, name: &str) -> Result<Option<Duration>, String> {
        json_duration(self.0.get(name)).map_err(|e| format!("field {name:?}: {e}"))
    }
}

#[cfg(test)]
impl Entry {
    /// An entry for `target` with every optional field at its default, for tests.
    pub(crate) fn for_test(target: &Path) -> Entry {
        Entry {
            id: "test-entry".into(),
            file: PathBuf::from("/etc/reconfig/conf.d/test.json"),
            key: "/test/key".into(),
            template: PathBuf::from("/etc/reconfig/templates/test.erb"),
            target: target.to_path_buf(),
            recursive: false,
            altkeys: BTreeMap::new(),
            keys: vec![],
            prefix: None,
            pattern: Pattern::default(),
            checkcmd: None,
            reloadcmd: None,
            mode: None,
            owner: None,
            group: None,
            splay: Duration::ZERO,
            debounce: None,
            reload_interval: None,
            check_timeout: DEFAULT_COMMAND_TIMEOUT,
            reload_timeout: DEFAULT_COMMAND_TIMEOUT,
            watchaltkeys: false,
            reloadsignal: None,
            limits: LimitOverrides::default(),
            rollout: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(entries: &[(&str, &str)], templates: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        for (name, text) in entries {
            std::fs::write(dir.path().join("conf.d").join(name), text).unwrap();
        }
        for name in templates {
            std::fs::write(dir.path().join("templates").join(name), "x").unwrap();
        }
        dir
    }

    #[test]
    fn normalizes_keys() {
        assert_eq!(normalize_key("", "/a//b/"), "/a/b");
        assert_eq!(normalize_key("/prod/", "/a"), "/prod/a");
        assert_eq!(normalize_key("", "/"), "/");
    }

    #[test]
    fn prefix_applies_to_key_not_altkeys() {
        let dir = dir_with(
            &[(
                "a.json",
                r#"{"key":"/k","source":"t","target":"/tmp/x","altkeys":{"a":"/alt"}}"#,
            )],
            &["t"],
        );
        let loaded = load(dir.path(), "/env").unwrap();
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let e = &loaded.entries[0];
        assert_eq!(e.key, "/env/k");
        assert_eq!(e.altkeys["a"], "/alt");
        assert_eq!(e.id, dir.path().join("conf.d/a.json").display().to_string());
        assert_eq!(e.check_timeout, DEFAULT_COMMAND_TIMEOUT);
    }

    #[test]
    fn keys_and_prefix_join_key_under_both_prefixes() {
        let dir = dir_with(
            &[
                (
                    "a.json",
                    r#"{"prefix":"/app","keys":["/db","/web/","/db"],"source":"t","target":"/tmp/a"}"#,
                ),
                (
                    "b.json",
                    r#"{"key":"/k","keys":["/x"],"altkeys":{"n":"/alt"},"source":"t","target":"/tmp/b"}"#,
                ),
                ("c.json", r#"{"keys":[],"source":"t","target":"/tmp/c"}"#),
                ("d.json", r#"{"keys":["x"],"source":"t","target":"/tmp/d"}"#),
            ],
            &["t"],
        );
        let loaded = load(dir.path(), "/env").unwrap();
        let a = &loaded.entries[0];
        assert_eq!(a.key, "/env/app/db", "without key, the first of keys");
        assert_eq!(a.keys, ["/env/app/web"], "each key once");
        assert_eq!(a.prefix.as_deref(), Some("/env/app"));
        let b = &loaded.entries[1];
        let read: Vec<&str> = b.read_keys().collect();
        assert_eq!(read, ["/env/k", "/alt", "/env/x"]);
        let watched: Vec<&str> = b.watched_keys().collect();
        assert_eq!(
            watched,
            ["/env/k", "/env/x"],
            "keys always watched, altkeys not"
        );
        let problems: Vec<String> = loaded.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("c.json") && problems[0].contains("\"keys\""));
        assert!(problems[1].contains("d.json") && problems[1].contains("keys must be"));
    }

    #[test]
    fn each_invalid_entry_is_one_problem_and_valid_ones_survive() {
        let dir = dir_with(
            &[
                ("1.json", r#"{"key":"/k","source":"t","target":"/tmp/a"}"#),
                ("2.json", r#"{"key":"/k","source":"t","target":"/tmp/a"}"#),
                ("3.json", "{ not json"),
                ("4.json", r#"{"source":"t","target":"/tmp/b"}"#),
                ("5.json", r#"{"key":"k","source":"t","target":"/tmp/c"}"#),
                (
                    "6.json",
                    r#"{"key":"/k","source":"nope","target":"/tmp/d"}"#,
                ),
                (
                    "7.json",
                    r#"{"key":"/k","source":"t","target":"/tmp/e","altkeys":[1]}"#,
                ),
                (
                    "8.json",
                    r#"{"key":"/k","source":"t","target":"/tmp/f","pattern":"<%"}"#,
                ),
                (
                    "9.json",
                    r#"{"key":"/k","source":"t","target":"/tmp/g","mode":"99"}"#,
                ),
                (
                    "a.json",
                    r#"{"key":"/k","source":"/proc/self/environ","target":"/tmp/h"}"#,
                ),
                (
                    "b.json",
                    r#"{"key":"/k","source":"../conf.d/1.json","target":"/tmp/i"}"#,
                ),
            ],
            &["t"],
        );
        let loaded = load(dir.path(), "").unwrap();
        assert_eq!(loaded.entries.len(), 1);
        let reasons: Vec<String> = loaded.problems.iter().map(|p| p.to_string()).collect();
        let expect = [
            ("2.json", "already claimed by"),
            ("3.json", "malformed JSON"),
            ("4.json", "missing required field \"key\""),
            ("5.json", "must begin with '/'"),
            ("6.json", "not found"),
            ("7.json", "altkeys must be an object"),
            ("8.json", "invalid pattern"),
            ("9.json", "octal"),
            (
                "a.json",
                "source \"/proc/self/environ\" is an absolute path",
            ),
            (
                "b.json",
                "source \"../conf.d/1.json\" leads outside templates/",
            ),
        ];
        assert_eq!(reasons.len(), expect.len(), "{reasons:#?}");
        for (reason, (file, text)) in reasons.iter().zip(expect) {
            assert!(reason.contains(file) && reason.contains(text), "{reason}");
            assert!(!reason.contains('\n'), "one line: {reason}");
        }
    }

    #[test]
    fn optional_fields_parse() {
        let dir = dir_with(
            &[(
                "a.json",
                r##"{"id":"x","key":"/k","source":"t","target":"/tmp/x","mode":"0640",
                   "splay":"2s","debounce":0.5,"check_timeout":"1m","reloadsignal":"hup",
                   "watchaltkeys":true,"pattern":"#% %#"}"##,
            )],
            &["t"],
        );
        let e = &load(dir.path(), "").unwrap().entries[0];
        assert_eq!(e.mode, Some(0o640));
        assert_eq!(e.splay, Duration::from_secs(2));
        assert_eq!(e.debounce, Some(Duration::from_millis(500)));
        assert_eq!(e.check_timeout, Duration::from_secs(60));
        assert_eq!(e.reloadsignal, Some(Signal::SIGHUP));
        assert!(e.watchaltkeys);
        assert_eq!(e.pattern.open, "#%");
    }

    #[test]
    fn rollout_problems_are_one_line_per_field_and_one_group_per_node() {
        let dir = dir_with(
            &[
                (
                    "1.json",
                    r#"{"id":"web","key":"/k","source":"t","target":"/tmp/a","rollout":{"canary":2}}"#,
                ),
                (
                    "2.json",
                    r#"{"id":"x","key":"/k","source":"t","target":"/tmp/b",
                       "rollout":{"max_parallel":0,"bake":"soon"}}"#,
                ),
                (
                    "3.json",
                    r#"{"id":"y","key":"/k","source":"t","target":"/tmp/c","rollout":{"group":"web"}}"#,
                ),
            ],
            &["t"],
        );
        let loaded = load(dir.path(), "").unwrap();
        assert_eq!(loaded.entries.len(), 1);
        let rollout = loaded.entries[0].rollout.as_ref().unwrap();
        assert_eq!((rollout.group.as_str(), rollout.canary), ("web", 2));
        let reasons: Vec<String> = loaded.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(reasons.len(), 3, "{reasons:#?}");
        assert!(
            reasons[0].contains("2.json: rollout.max_parallel"),
            "{reasons:?}"
        );
        assert!(reasons[1].contains("2.json: rollout.bake"), "{reasons:?}");
        assert!(
            reasons[2].contains("3.json: rollout.group \"web\" is already used by"),
            "{reasons:?}"
        );
    }

    #[test]
    fn bad_prefix_and_missing_dirs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load(dir.path(), ""), Err(ConfigError::NotADir(_))));
        assert!(matches!(load(dir.path(), "x"), Err(ConfigError::Prefix(_))));
    }
}
