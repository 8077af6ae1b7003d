//! Durations as operators write them: plain seconds (`5`, `0.5`) or with a unit
//! (`500ms`, `30s`, `2m`), for flags and conf.d fields alike.

use std::time::Duration;

use serde_json::Value;

/// Parses `5`, `0.5`, `500ms`, `30s`, `2m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| {
            format!("invalid duration {text:?}: must be a non-negative number of seconds")
        });
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("invalid duration {text:?} ({e}); use seconds (5, 0.5) or a unit (500ms, 30s, 2m)")
    })
}

/// A duration given in a JSON field: seconds as a number, or text [`parse_duration`] takes;
/// `None` when the field is absent or null. The error says what is wrong; the caller names
/// the field.
pub fn json_duration(value: Option<&Value>) -> Result<Option<Duration>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .map(Some)
            .ok_or_else(|| format!("{n} is not a valid number of seconds")),
        Some(Value::String(s)) => parse_duration(s).map(Some),
        Some(_) => Err("must be seconds or a duration string".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_seconds_and_units() {
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    }

    #[test]
    fn rejects_garbage_and_negatives() {
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
    }
}
