//! An entry's `rollout` object: its changes reach the fleet a few nodes at a time, canaries
//! first, coordinated with every node whose entry names the same group (see
//! `crate::rollout`). Every bad field is its own one-line problem, so one look at the log
//! shows everything to fix; an unknown field is one too, since a misspelt setting would
//! silently change how a whole fleet takes a change.

use std::time::Duration;

use serde_json::{Map, Value};

use super::{json_duration, DEFAULT_COMMAND_TIMEOUT};

/// The fields a `rollout` object may have.
const FIELDS: &[&str] = &[
    "group",
    "max_parallel",
    "canary",
    "healthcmd",
    "health_timeout",
    "bake",
];

/// How an entry's changes are rolled out across the nodes of its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutSpec {
    /// The nodes whose entries name this group coordinate; default: the entry's id.
    pub group: String,
    /// Most nodes of the group between "new file swapped in" and "reloaded, healthy and
    /// baked" at any moment.
    pub max_parallel: u32,
    /// The first this many nodes of a change go alone; the others start once they are done.
    pub canary: u32,
    /// Must succeed after the reload for the node to count as healthy.
    pub healthcmd: Option<String>,
    /// Time limit of `healthcmd`.
    pub health_timeout: Duration,
    /// How long a healthy node waits before it counts as done.
    pub bake: Duration,
}

/// The default of `--rollout-prefix`.
pub const DEFAULT_ROLLOUT_PREFIX: &str = "/reconfig/rollout/";

/// A `--rollout-prefix` as keys use it: it must begin with `/`, and ends with one.
pub fn parse_rollout_prefix(prefix: &str) -> Result<String, String> {
    if !prefix.starts_with('/') {
        return Err(format!("rollout prefix {prefix:?} must begin with '/'"));
    }
    Ok(if prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    })
}

/// Checks a group or node name: it becomes part of etcd keys, so it is a plain word.
pub fn check_name(name: &str) -> Result<(), String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if name.is_empty() || name.len() > 128 || !name.chars().all(plain) {
        return Err(format!(
            "{name:?} is not a name: 1 to 128 letters, digits, '.', '_' or '-'"
        ));
    }
    Ok(())
}

/// Parses the entry's `rollout` field (none when absent or null); `id` is the entry's id,
/// the default group. The errors are one line each, every bad field named.
pub fn parse(value: Option<&Value>, id: &str) -> Result<Option<RolloutSpec>, Vec<String>> {
    let obj = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(obj)) => obj,
        Some(_) => {
            return Err(vec![
                "field \"rollout\" must be an object such as {\"max_parallel\": 10, \"canary\": 2}"
                    .to_string(),
            ])
        }
    };
    let mut errors: Vec<String> = obj
        .keys()
        .filter(|k| !FIELDS.contains(&k.as_str()))
        .map(|k| format!("rollout.{k}: unknown field (known: {})", FIELDS.join(", ")))
        .collect();
    let group = take(&mut errors, group(obj, id));
    let max_parallel = take(&mut errors, count(obj, "max_parallel", 1));
    let canary = take(&mut errors, count(obj, "canary", 0));
    let healthcmd = take(&mut errors, command(obj));
    let timeout = duration(obj, "health_timeout", DEFAULT_COMMAND_TIMEOUT);
    let health_timeout = take(&mut errors, timeout);
    let bake = take(&mut errors, duration(obj, "bake", Duration::ZERO));
    if let Some(Duration::ZERO) = health_timeout {
        errors.push("rollout.health_timeout: must be above 0".to_string());
    }
    match (group, max_parallel, canary, healthcmd, health_timeout, bake) {
        (Some(group), Some(max_parallel), Some(canary), Some(healthcmd), Some(t), Some(bake))
            if errors.is_empty() =>
        {
            Ok(Some(RolloutSpec {
                group,
                max_parallel,
                canary,
                healthcmd,
                health_timeout: t,
                bake,
            }))
        }
        _ => Err(errors),
    }
}

/// The value, or None with its error kept.
fn take<T>(errors: &mut Vec<String>, result: Result<T, String>) -> Option<T> {
    result.map_err(|e| errors.push(e)).ok()
}

fn group(obj: &Map<String, Value>, id: &str) -> Result<String, String> {
    match obj.get("group") {
        None | Some(Value::Null) => check_name(id).map(|()| id.to_string()).map_err(|_| {
            format!(
                "rollout.group: missing, and the entry's id {id:?} cannot name a group \
                 (letters, digits, '.', '_' or '-'); set \"group\" (or \"id\")"
            )
        }),
        Some(Value::String(name)) => check_name(name)
            .map(|()| name.clone())
            .map_err(|e| format!("rollout.group: {e}")),
        Some(_) => Err("rollout.group: must be a string".to_string()),
    }
}

/// A whole number of at least `least`; 1 when absent.
fn count(obj: &Map<String, Value>, name: &str, least: u64) -> Result<u32, String> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(1),
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|n| *n >= least)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("rollout.{name}: {n} is not a whole number from {least}")),
        Some(_) => Err(format!(
            "rollout.{name}: must be a whole number from {least}"
        )),
    }
}

fn command(obj: &Map<String, Value>) -> Result<Option<String>, String> {
    match obj.get("healthcmd") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(cmd)) => Ok(Some(cmd.clone()).filter(|c| !c.trim().is_empty())),
        Some(_) => Err("rollout.healthcmd: must be a command string".to_string()),
    }
}

fn duration(obj: &Map<String, Value>, name: &str, default: Duration) -> Result<Duration, String> {
    json_duration(obj.get(name))
        .map(|d| d.unwrap_or(default))
        .map_err(|e| format!("rollout.{name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(json: &str) -> Result<Option<RolloutSpec>, Vec<String>> {
        let value: Value = serde_json::from_str(json).unwrap();
        parse(Some(&value), "edge-lb")
    }

    #[test]
    fn defaults_are_one_at_a_time_with_one_canary() {
        let spec = parsed("{}").unwrap().unwrap();
        assert_eq!(spec.group, "edge-lb");
        assert_eq!((spec.max_parallel, spec.canary), (1, 1));
        assert_eq!(spec.healthcmd, None);
        assert_eq!(spec.health_timeout, DEFAULT_COMMAND_TIMEOUT);
        assert_eq!(spec.bake, Duration::ZERO);
        assert_eq!(parse(None, "x"), Ok(None));
        assert_eq!(parse(Some(&Value::Null), "x"), Ok(None));
    }

    #[test]
    fn every_field_parses() {
        let spec = parsed(
            r#"{"group":"web","max_parallel":10,"canary":2,"healthcmd":"curl -f localhost",
                "health_timeout":"30s","bake":0.5}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            spec,
            RolloutSpec {
                group: "web".into(),
                max_parallel: 10,
                canary: 2,
                healthcmd: Some("curl -f localhost".into()),
                health_timeout: Duration::from_secs(30),
                bake: Duration::from_millis(500),
            }
        );
    }

    #[test]
    fn every_bad_field_is_one_line_naming_it() {
        let errors = parsed(
            r#"{"group":"a/b","max_parallel":0,"canary":-1,"healthcmd":3,
                "health_timeout":"soon","bake":[],"canry":2}"#,
        )
        .unwrap_err();
        let fields = [
            "rollout.canry",
            "rollout.group",
            "rollout.max_parallel",
            "rollout.canary",
            "rollout.healthcmd",
            "rollout.health_timeout",
            "rollout.bake",
        ];
        assert_eq!(errors.len(), fields.len(), "{errors:#?}");
        for (error, field) in errors.iter().zip(fields) {
            assert!(error.starts_with(field), "{error}");
            assert!(!error.contains('\n'), "{error}");
        }
        let errors = parsed(r#"{"health_timeout":0}"#).unwrap_err();
        assert_eq!(errors, ["rollout.health_timeout: must be above 0"]);
        assert!(parse(Some(&Value::Bool(true)), "x").unwrap_err()[0].contains("object"));
    }

    #[test]
    fn an_id_that_is_no_name_needs_a_group() {
        let value: Value = serde_json::from_str("{}").unwrap();
        let errors = parse(Some(&value), "/etc/reconfig/conf.d/web.json").unwrap_err();
        assert!(
            errors[0].starts_with("rollout.group: missing"),
            "{errors:?}"
        );
    }

    #[test]
    fn prefixes_end_with_a_slash() {
        assert_eq!(parse_rollout_prefix("/a").unwrap(), "/a/");
        let default = parse_rollout_prefix(DEFAULT_ROLLOUT_PREFIX);
        assert_eq!(default.unwrap(), DEFAULT_ROLLOUT_PREFIX);
        assert!(parse_rollout_prefix("a/").is_err());
    }

    #[test]
    fn names_are_plain_words() {
        assert!(check_name("web-03.example_1").is_ok());
        for bad in ["", "a/b", "a b", "é", &"x".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
