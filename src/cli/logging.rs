//! Log set-up: human-readable text by default, JSON lines for machines, on stderr
//! (stdout carries `--notreally` diffs and `reconfig render` output).
//!
//! A text line shows keys from etcd and commands' output, which anyone able to write a key
//! or make a command print controls: control characters (a newline that would start a
//! forged line, a terminal escape) and Unicode's direction overrides are escaped in it, so
//! one event is always one line, shown as it is. JSON lines are escaped by JSON itself.
//!
//! The level comes from `-d` or `RUST_LOG` and can be flipped at run time (SIGUSR1).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::IsTerminal;

use clap::ValueEnum;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{filter::EnvFilter, fmt, prelude::*, reload};

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Timestamp, level, entry, message.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

/// Changes the log level of a running process.
pub struct LogControl {
    handle: reload::Handle<EnvFilter, tracing_subscriber::Registry>,
    base: String,
    debug: bool,
}

impl LogControl {
    /// Switches debug logging on or off (reconfig.rb's SIGUSR1); returns the new state.
    pub fn toggle_debug(&mut self) -> bool {
        self.debug = !self.debug;
        let filter = filter_for(&self.base, self.debug);
        if self.handle.reload(filter).is_err() {
            tracing::warn!("could not change the log level");
        }
        self.debug
    }
}

fn filter_for(base: &str, debug: bool) -> EnvFilter {
    if debug {
        EnvFilter::new("debug,h2=info,tower=info,hyper=info,tonic=info")
    } else {
        EnvFilter::new(base)
    }
}

/// Installs the global logger; call once at start-up.
pub fn init(debug: bool, format: LogFormat) -> LogControl {
    let base = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "info".to_string());
    let (filter, handle) = reload::Layer::new(filter_for(&base, debug));
    let registry = tracing_subscriber::registry().with(filter);
    let writer = std::io::stderr;
    let result = match format {
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(writer).event_format(TextFormat {
                color: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            }))
            .try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(writer).with_target(false))
            .try_init(),
    };
    if result.is_err() {
        eprintln!("reconfig: a logger was already installed");
    }
    LogControl {
        handle,
        base,
        debug,
    }
}

/// `2026-01-02T03:04:05.678Z  INFO [entry] message key=value`: the entry id up front,
/// because operators grep logs by entry.
struct TextFormat {
    color: bool,
}

impl<S, N> FormatEvent<S, N> for TextFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = *event.metadata().level();
        let (on, off) = match (self.color, level) {
            (false, _) => ("", ""),
            (true, Level::ERROR) => ("\x1b[31m", "\x1b[0m"),
            (true, Level::WARN) => ("\x1b[33m", "\x1b[0m"),
            (true, Level::INFO) => ("\x1b[32m", "\x1b[0m"),
            (true, _) => ("\x1b[2m", "\x1b[0m"),
        };
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        write!(writer, "{now} {on}{level:>5}{off} ")?;
        if let Some(entry) = &fields.entry {
            write!(writer, "[{}] ", escaped(entry))?;
        }
        writeln!(
            writer,
            "{}{}",
            escaped(&fields.message),
            escaped(&fields.rest)
        )
    }
}

/// Whether a character could break a log line or change how the terminal shows it: control
/// characters but the tab, and the bidirectional formatting characters.
fn unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every [`unsafe_char`] written as Rust's escape (`\n`, `\u{1b}`).
fn escaped(text: &str) -> Cow<'_, str> {
    if !text.contains(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escaped("plain text\tand tab"), "plain text\tand tab");
        assert_eq!(
            escaped("key /a\n2026 INFO forged\u{1b}[31m\u{202e}"),
            "key /a\\n2026 INFO forged\\u{1b}[31m\\u{202e}"
        );
        assert_eq!(escaped("café ✓"), "café ✓");
    }
}

/// The fields of one event, split into message, entry id and the rest.
#[derive(Default)]
struct Fields {
    message: String,
    entry: Option<String>,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "entry" => self.entry = Some(value.to_string()),
            name => {
                let _ = write!(self.rest, " {name}={value:?}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "entry" => self.entry = Some(format!("{value:?}")),
            name => {
                let _ = write!(self.rest, " {name}={value:?}");
            }
        }
    }
}
