//! Log set-up: human-readable text by default, JSON lines for machines, on stderr
//! (stdout carries `--notreally` diffs and `reconfig render` output).
//!
//! The level comes from `-d` or `RUST_LOG` and can be flipped at run time (SIGUSR1).

use clap::ValueEnum;
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
            .with(fmt::layer().with_writer(writer).with_target(false))
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
