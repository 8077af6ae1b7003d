//! Durations as operators write them: plain seconds (`5`, `0.5`) or with a unit
//! (`500ms`, `30s`, `2m`), for flags and conf.d fields alike.

use std::time::Duration;

use serde_json::Value;

/// The longest duration taken: 100 years (of 365.25 days). A deadline is the time now plus
/// a duration, and the clock cannot reach as far as the longest a duration can be written.
pub const LONGEST: Duration = Duration::from_secs(100 * 31_557_600);

/// Parses `5`, `0.5`, `500ms`, `30s`, `2m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| {
                format!("invalid duration {text:?}: must be a non-negative number of seconds")
            })
            .and_then(|duration| within_reach(text, duration));
    }
    humantime::parse_duration(text)
        .map_err(|e| {
            format!(
                "invalid duration {text:?} ({e}); use seconds (5, 0.5) or a unit (500ms, 30s, 2m)"
            )
        })
        .and_then(|duration| within_reach(text, duration))
}

/// `duration`, unless it is longer than [`LONGEST`].
fn within_reach(text: &str, duration: Duration) -> Result<Duration, String> {
    if duration > LONGEST {
        return Err(format!(
            "invalid duration {text}: longer than 100 years, the longest reconfig takes"
        ));
    }
    Ok(duration)
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
            .ok_or_else(|| format!("{n} is not a valid number of seconds"))
            .and_then(|duration| within_reach(&n.to_string(), duration))
            .map(Some),
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
    fn rejects_what_the_clock_cannot_reach() {
        assert_eq!(parse_duration("100y").unwrap(), LONGEST);
        for text in ["18446744073709551615s", "101y", "3155760001"] {
            let error = parse_duration(text).unwrap_err();
            assert!(error.contains("100 years"), "{text}: {error}");
        }
        let error = json_duration(Some(&serde_json::json!(1e19))).unwrap_err();
        assert!(error.contains("100 years"), "{error}");
    }

    #[test]
    fn rejects_garbage_and_negatives() {
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
    }
}
