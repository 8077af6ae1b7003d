//! reconfig.rb's reload jitter made explicit in a migrated entry. reconfig.rb waited
//! `rand(splay) + 1` seconds before every reload, `rand(10) + 1` when an entry had no
//! `splay`; reconfig waits only as long as `splay` says (0 by default). So an entry with a
//! `reloadcmd` and no `splay` gets `"splay": "10s"`, inserted as text before its closing
//! brace: the rest of the file keeps its bytes, its key order and its layout.

use serde_json::Value;

/// The splay written: reconfig.rb's effective default.
pub const DEFAULT: &str = "10s";

/// The entry's text with `"splay": "10s"` added, when it has a `reloadcmd` and no `splay`.
/// `entry` is `text` parsed (a JSON object).
pub fn with_default(text: &[u8], entry: &Value) -> Option<Vec<u8>> {
    let reloads = entry.get("reloadcmd").is_some_and(|cmd| !cmd.is_null());
    if !reloads || entry.get("splay").is_some() {
        return None;
    }
    let close = text.iter().rposition(|&b| b == b'}')?;
    let last = text[..close]
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())?;
    let end = last + 1;
    let member = format!("\"splay\": \"{DEFAULT}\"");
    let insert = if text[end..close].contains(&b'\n') {
        let line_start = text[..end]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let indent: Vec<u8> = text[line_start..]
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .copied()
            .collect();
        let newline: &[u8] = if text.windows(2).any(|w| w == b"\r\n") {
            b"\r\n"
        } else {
            b"\n"
        };
        [b",", newline, &indent, member.as_bytes()].concat()
    } else {
        [b", ", member.as_bytes()].concat()
    };
    Some([&text[..end], &insert, &text[end..]].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn splayed(text: &str) -> Option<String> {
        let entry: Value = serde_json::from_str(text).unwrap();
        with_default(text.as_bytes(), &entry).map(|bytes| String::from_utf8(bytes).unwrap())
    }

    #[test]
    fn the_member_goes_before_the_closing_brace_in_the_entry_s_own_layout() {
        assert_eq!(
            splayed("{\n\t\"key\": \"/k\",\n\t\"reloadcmd\": \"r\"\n}\n").unwrap(),
            "{\n\t\"key\": \"/k\",\n\t\"reloadcmd\": \"r\",\n\t\"splay\": \"10s\"\n}\n"
        );
        assert_eq!(
            splayed(r#"{ "reloadcmd": "r" }"#).unwrap(),
            r#"{ "reloadcmd": "r", "splay": "10s" }"#
        );
        assert_eq!(
            splayed("{\"reloadcmd\": \"a }\",\n\"keys\": [\"/k\"]}\n\n").unwrap(),
            "{\"reloadcmd\": \"a }\",\n\"keys\": [\"/k\"], \"splay\": \"10s\"}\n\n"
        );
    }

    #[test]
    fn only_an_entry_that_reloads_without_a_splay_changes() {
        assert_eq!(splayed(r#"{"reloadcmd": "r", "splay": 0}"#), None);
        assert_eq!(splayed(r#"{"reloadcmd": "r", "splay": null}"#), None);
        assert_eq!(splayed(r#"{"reloadcmd": null}"#), None);
        assert_eq!(splayed(r#"{"key": "/k"}"#), None);
    }
}
