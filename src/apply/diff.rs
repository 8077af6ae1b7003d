//! The unified diff `--notreally` prints instead of writing.

use std::path::Path;

use similar::{ChangeTag, TextDiff};

/// Lines of unchanged context around each change, as `diff -u` shows.
const CONTEXT: usize = 3;

const BOLD: &str = "\x1b[1m";
const CYAN: &str = "\x1b[36m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const RESET: &str = "\x1b[0m";

/// The change from `old` to `new` as a unified diff headed `--- TARGET` / `+++ TARGET (new)`,
/// with ANSI colours when `color` (the caller knows whether the output is a terminal).
///
/// Empty when the contents are equal. Bytes that are not UTF-8 show as U+FFFD.
pub fn unified_diff(target: &Path, old: &[u8], new: &[u8], color: bool) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    let diff = TextDiff::from_lines(old.as_ref(), new.as_ref());
    let mut out = Output {
        text: String::new(),
        color,
    };
    for (i, hunk) in diff
        .unified_diff()
        .context_radius(CONTEXT)
        .iter_hunks()
        .enumerate()
    {
        if i == 0 {
            out.line(BOLD, &format!("--- {}", target.display()));
            out.line(BOLD, &format!("+++ {} (new)", target.display()));
        }
        out.line(CYAN, &hunk.header().to_string());
        for change in hunk.iter_changes() {
            let (sign, paint) = match change.tag() {
                ChangeTag::Delete => ('-', RED),
                ChangeTag::Insert => ('+', GREEN),
                ChangeTag::Equal => (' ', ""),
            };
            let value = change.value();
            out.line(
                paint,
                &format!("{sign}{}", value.strip_suffix('\n').unwrap_or(value)),
            );
            if change.missing_newline() {
                out.line("", "\\ No newline at end of file");
            }
        }
    }
    out.text
}

/// Diff text under construction.
struct Output {
    text: String,
    color: bool,
}

impl Output {
    /// Appends `line` and a newline, wrapped in `paint` and a reset when colouring.
    fn line(&mut self, paint: &str, line: &str) {
        if self.color && !paint.is_empty() {
            self.text.push_str(paint);
            self.text.push_str(line);
            self.text.push_str(RESET);
        } else {
            self.text.push_str(line);
        }
        self.text.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "a\nb\nc\nd\ne\nf\ng\nh\n";
    const NEW: &str = "a\nb\nc\nd\nE\nf\ng\nh\n";

    #[test]
    fn plain_diff_has_headers_and_three_lines_of_context() {
        let diff = unified_diff(
            Path::new("/etc/x.conf"),
            OLD.as_bytes(),
            NEW.as_bytes(),
            false,
        );
        assert_eq!(
            diff,
            "--- /etc/x.conf\n+++ /etc/x.conf (new)\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n"
        );
    }

    #[test]
    fn plain_diff_matches_similar_including_missing_newline() {
        let (old, new) = ("x\ny", "x\nz\n");
        let expected = TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(CONTEXT)
            .header("t", "t (new)")
            .to_string();
        assert_eq!(
            unified_diff(Path::new("t"), old.as_bytes(), new.as_bytes(), false),
            expected
        );
        assert!(
            expected.contains("-y\n\\ No newline at end of file\n+z\n"),
            "{expected}"
        );
    }

    #[test]
    fn missing_target_diffs_against_nothing() {
        let diff = unified_diff(Path::new("/n"), b"", b"one\n", false);
        assert_eq!(diff, "--- /n\n+++ /n (new)\n@@ -0,0 +1 @@\n+one\n");
    }

    #[test]
    fn colour_wraps_each_kind_of_line() {
        let diff = unified_diff(Path::new("/c"), b"old\n", b"new\n", true);
        assert_eq!(
            diff,
            "\x1b[1m--- /c\x1b[0m\n\x1b[1m+++ /c (new)\x1b[0m\n\x1b[36m@@ -1 +1 @@\x1b[0m\n\
             \x1b[31m-old\x1b[0m\n\x1b[32m+new\x1b[0m\n"
        );
    }

    #[test]
    fn equal_contents_give_no_diff() {
        assert_eq!(
            unified_diff(Path::new("/e"), b"same\n", b"same\n", true),
            ""
        );
    }
}
