//! The command-line interface of `reconfig`: reconfig.rb's flags (same spellings, plus
//! kebab-case aliases) and the subcommands. Parsing only; `main` hands the result on.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::connect::ConnectArgs;
use crate::duration::parse_duration;
use crate::logging::LogFormat;

/// Keeps configuration files in step with data in etcd: renders templates, checks the
/// result, swaps it in atomically and reloads the service.
#[derive(Debug, Parser)]
#[command(name = "reconfig", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do instead of running the daemon.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of the daemon / one-shot run.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render templates against a local snapshot of keys, without etcd, to stdout.
    Render(RenderArgs),
}

/// Flags of the main job (reconfig.rb-compatible).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Config directory holding conf.d/ and templates/
    #[arg(
        short = 'c',
        long,
        visible_alias = "cfg-dir",
        default_value = "/etc/reconfig",
        value_name = "DIR"
    )]
    pub cfgdir: PathBuf,
    /// Debug logging (SIGUSR1 toggles it at run time)
    #[arg(short = 'd', long)]
    pub debug: bool,
    /// Show what would change as a diff; write nothing, run no command
    #[arg(short = 'n', long, visible_alias = "not-really")]
    pub notreally: bool,
    /// Render every entry once, run its commands, and exit
    #[arg(short = 'o', long, visible_alias = "one-time")]
    pub onetime: bool,
    /// Prefix prepended to every entry's key (not to altkeys); must begin with '/'
    #[arg(short = 'p', long, default_value = "", value_name = "PREFIX", value_parser = parse_prefix)]
    pub prefix: String,
    /// Log format
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
    /// Quiet time to wait for after a change before rendering (all entries)
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub debounce: Option<Duration>,
    /// etcd connection
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Flags of `reconfig render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Snapshot of keys: a flat JSON or YAML object, full key → value
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Render only the entry with this id
    #[arg(long, value_name = "ID")]
    pub entry: Option<String>,
    /// Config directory holding conf.d/ and templates/
    #[arg(
        short = 'c',
        long,
        visible_alias = "cfg-dir",
        default_value = "/etc/reconfig",
        value_name = "DIR"
    )]
    pub cfgdir: PathBuf,
    /// Prefix prepended to every entry's key (not to altkeys); must begin with '/'
    #[arg(short = 'p', long, default_value = "", value_name = "PREFIX", value_parser = parse_prefix)]
    pub prefix: String,
}

fn parse_prefix(text: &str) -> Result<String, String> {
    crate::config::validate_prefix(text)
        .map(|()| text.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconfig_rb_flags_parse() {
        let cli = Cli::try_parse_from([
            "reconfig", "-c", "/x", "-d", "-n", "-o", "-p", "/pre", "--host", "h", "--port", "1",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        let run = cli.run;
        assert_eq!(run.cfgdir, PathBuf::from("/x"));
        assert!(run.debug && run.notreally && run.onetime);
        assert_eq!(run.prefix, "/pre");
        assert_eq!(run.connect.host.as_deref(), Some("h"));
    }

    #[test]
    fn prefix_without_slash_is_a_usage_error() {
        let err = Cli::try_parse_from(["reconfig", "-p", "pre"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("must begin with '/'"));
    }

    #[test]
    fn render_subcommand_parses() {
        let cli = Cli::try_parse_from(["reconfig", "render", "--data", "s.json", "--entry", "a"])
            .unwrap();
        assert!(matches!(cli.command, Some(Command::Render(_))));
    }

    #[test]
    fn definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
