//! The command-line interface of `reconfig`: reconfig.rb's flags (same spellings, plus
//! kebab-case aliases) and the subcommands. Parsing only; `main` hands the result on.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;
use nix::sys::signal::Signal;
use reconfig_migrate::{Conversion, Destination};

use super::connect::ConnectArgs;
use super::logging::LogFormat;
use crate::config::{
    check_name, parse_depth, parse_duration, parse_rollout_prefix, parse_signal, parse_size,
    validate_prefix, LimitOverrides, RenderLimits, DEFAULT_ROLLOUT_PREFIX,
};
use crate::daemon::DaemonSettings;
use crate::dispense::DispenseSettings;
use crate::etcd::SECRET_ENV;
use crate::pipeline::{RenderSettings, RunSettings, StatusSettings};
use crate::rollout::{RolloutStatusSettings, Settings as RolloutSettings};
use crate::service::retry::Pacing;
use crate::service::Monitoring;

/// Keeps configuration files in step with data in etcd: renders templates, checks the
/// result, swaps it in atomically and reloads the service.
#[derive(Debug, Parser)]
#[command(name = "reconfig", version, args_conflicts_with_subcommands = true)]
#[command(mut_arg("ssl", |a| a.short('s')))]
#[command(mut_args(with_env))]
pub struct Cli {
    /// What to do instead of running the daemon.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of the daemon / one-shot run.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Every flag of the daemon can be set from the environment too (`--reload-interval` from
/// `RECONFIG_RELOAD_INTERVAL`), so that a unit's `EnvironmentFile` can carry any setting;
/// a flag given beats its variable. Flags that already have a variable (`ETCD_USERNAME`,
/// `ETCD_PASSWORD`, `RECONFIG_STATE_DIR`, …) keep it, and `--endpoints` keeps
/// `ETCD_ENDPOINTS` with its own precedence.
fn with_env(arg: clap::Arg) -> clap::Arg {
    let Some(long) = arg.get_long().map(str::to_string) else {
        return arg;
    };
    if arg.get_env().is_some() || ["endpoints", "help", "version"].contains(&long.as_str()) {
        return arg;
    }
    let name = format!("RECONFIG_{}", long.to_uppercase().replace('-', "_"));
    let secret = SECRET_ENV.contains(&name.as_str());
    arg.env(name).hide_env_values(secret)
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render templates against a local snapshot of keys, without etcd, to stdout.
    Render(RenderArgs),
    /// Mirror every key under an etcd prefix into files of a directory, atomically per
    /// transaction, optionally supervising a command and signalling it on change.
    Dispense(Box<DispenseArgs>),
    /// Print a shell completion script for reconfig to stdout.
    Completions {
        /// The shell to complete in
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print reconfig's manual page (roff) to stdout, or a subcommand's, or write them all.
    Man(ManArgs),
    /// Show what each entry's recorded state says: reloaded, or a reload or check still due
    /// from a change the last run swapped in.
    Status(StatusArgs),
    /// Fleet rollouts: what etcd holds about a group's rollout.
    Rollout(Box<RolloutArgs>),
    /// Convert a reconfig.rb configuration (conf.d entries and Ruby templates) for reconfig:
    /// the Ruby in each template's tags becomes Tera with the same output.
    Migrate(Box<MigrateArgs>),
}

/// Flags of the main job (reconfig.rb-compatible).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where the entries are
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Debug logging (SIGUSR1 toggles it at run time)
    #[arg(short = 'd', long)]
    pub debug: bool,
    /// Show what would change as a diff; write nothing, run no command
    #[arg(short = 'n', long, visible_alias = "not-really")]
    pub notreally: bool,
    /// Render every entry once, run its commands, and exit
    #[arg(short = 'o', long, visible_alias = "one-time")]
    pub onetime: bool,
    /// Log format
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
    /// Quiet time to wait for after a change before rendering (all entries)
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub debounce: Option<Duration>,
    /// Least time between two reloads of an entry's service (entries may set their own
    /// reload_interval): the first reload after a quiet time runs at once, changes inside
    /// the interval fold into one reload at its end; 0 turns this off
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub reload_interval: Duration,
    /// Where each entry's state is kept
    #[command(flatten)]
    pub state: StateArgs,
    /// Render limits
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Retries
    #[command(flatten)]
    pub retry: RetryArgs,
    /// Monitoring
    #[command(flatten)]
    pub monitoring: MonitoringArgs,
    /// Fleet rollouts
    #[command(flatten)]
    pub rollout: RolloutFlags,
    /// etcd connection
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Command to start after the first sync and supervise: entries' reloadsignal goes to
    /// it, TERM/INT/QUIT/USR2/WINCH are passed on, its exit status becomes reconfig's
    #[arg(last = true, value_name = "CMD ARGS", conflicts_with = "onetime")]
    pub command: Vec<OsString>,
}

/// Where the entries are, for every command that loads `conf.d`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
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

/// Flags of `reconfig dispense` (etcd-config-dispenser's, plus the connection flags in
/// long form).
#[derive(Debug, Args)]
pub struct DispenseArgs {
    /// etcd prefix to mirror; a directory: /certs mirrors the keys under /certs/ only
    #[arg(short = 'p', long, value_name = "PREFIX", value_parser = parse_prefix)]
    pub prefix: String,
    /// Directory the files go to (owned by dispense: anything else in it is removed)
    #[arg(short = 't', long, value_name = "DIR")]
    pub target: PathBuf,
    /// Signal sent to the command once per published transaction, e.g. SIGHUP
    #[arg(short = 's', long, value_name = "SIGNAL", value_parser = parse_signal)]
    pub signal: Option<Signal>,
    /// Mode of the written files (octal)
    #[arg(short = 'm', long, value_name = "MODE", default_value = "0600", value_parser = parse_mode)]
    pub mode: u32,
    /// Owner of the written files (name or id) [default: the running user]
    #[arg(short = 'o', long, value_name = "USER")]
    pub owner: Option<String>,
    /// Group of the written files (name or id) [default: the running user's group]
    #[arg(short = 'g', long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Debug logging
    #[arg(short = 'd', long)]
    pub debug: bool,
    /// Log format
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
    /// Retries
    #[command(flatten)]
    pub retry: RetryArgs,
    /// Monitoring
    #[command(flatten)]
    pub monitoring: MonitoringArgs,
    /// etcd connection
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Command to start after the first sync and supervise: signals are passed on, its
    /// exit status becomes reconfig's
    #[arg(last = true, value_name = "CMD ARGS")]
    pub command: Vec<OsString>,
}

/// Monitoring flags of the long-running modes (the daemon and `reconfig dispense`).
#[derive(Debug, Clone, Args)]
pub struct MonitoringArgs {
    /// Serve Prometheus /metrics and /healthz on this address, e.g. 127.0.0.1:9100 (port 0:
    /// any free port, logged) [default: off]
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// /healthz answers 503 once etcd has been unreachable, or an entry failing, this long
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub unhealthy_after: Duration,
}

/// The render limits of every entry that does not set its own (`render_timeout`,
/// `render_max_iterations`, `render_max_output`, `render_max_depth` in an entry).
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Longest time one render may take [default: 10s]
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub render_timeout: Option<Duration>,
    /// Most loop iterations one render may run, all its loops together [default: 10000000]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub render_max_iterations: Option<u64>,
    /// Largest output one render may produce, e.g. 64MiB [default: 64MiB]
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub render_max_output: Option<u64>,
    /// Deepest nesting of includes and macro calls, 1 to 256 [default: 64]
    #[arg(long, value_parser = parse_depth, value_name = "N")]
    pub render_max_depth: Option<u32>,
}

impl LimitArgs {
    /// The limits these flags set, the defaults where they set none.
    pub fn limits(&self) -> RenderLimits {
        LimitOverrides {
            timeout: self.render_timeout,
            iterations: self.render_max_iterations,
            output: self.render_max_output,
            depth: self.render_max_depth,
        }
        .over(RenderLimits::default())
    }
}

/// How a change that could not be applied, or a reload that failed, is tried again.
#[derive(Debug, Clone, Args)]
pub struct RetryArgs {
    /// About how long after a failed write, check or reload it is first tried again; each
    /// retry waits twice as long, up to --retry-cap
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub retry_first: Duration,
    /// Longest wait between two retries of what keeps failing
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub retry_cap: Duration,
}

impl RetryArgs {
    /// The pacing these flags set.
    pub fn pacing(&self) -> Pacing {
        Pacing {
            first: self.retry_first,
            cap: self.retry_cap,
        }
    }
}

/// How this node takes part in the rollouts of entries with a `rollout` object.
#[derive(Debug, Args)]
pub struct RolloutFlags {
    /// Where the groups' keys are
    #[command(flatten)]
    pub prefix: RolloutPrefix,
    /// Time to live of the lease a node's place in a rollout is bound to: a node that dies
    /// gives its place up this long after it stopped answering
    #[arg(long, default_value = "10s", value_parser = parse_ttl, value_name = "DURATION")]
    pub rollout_ttl: Duration,
    /// This node's name in its rollout groups, unique in each: letters, digits, '.', '_',
    /// '-' [default: the host name]
    #[arg(long, value_parser = parse_name, value_name = "NAME")]
    pub node_name: Option<String>,
    /// With --onetime: the longest wait for this node's turn in a rollout; when it passes,
    /// the target is left as it was and the run fails
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub rollout_wait: Duration,
}

/// Where rollout groups keep their keys in etcd.
#[derive(Debug, Args)]
pub struct RolloutPrefix {
    /// The etcd prefix under which each rollout group keeps its keys (PREFIX/GROUP/...)
    #[arg(
        long,
        default_value = DEFAULT_ROLLOUT_PREFIX,
        value_parser = parse_rollout_prefix,
        value_name = "PREFIX"
    )]
    pub rollout_prefix: String,
}

/// `reconfig rollout`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// What to do
    #[command(subcommand)]
    pub command: RolloutCommand,
}

/// What `reconfig rollout` does.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Show a group's current rollout: its revision, and which nodes are done, in progress,
    /// waiting and failed, and why; exit 1 when it is held.
    Status(RolloutStatusArgs),
}

/// Flags of `reconfig rollout status`.
#[derive(Debug, Args)]
pub struct RolloutStatusArgs {
    /// The rollout group (an entry's rollout.group)
    #[arg(value_name = "GROUP", value_parser = parse_name)]
    pub group: String,
    /// Where the groups' keys are
    #[command(flatten)]
    pub prefix: RolloutPrefix,
    /// etcd connection
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Flags of `reconfig status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Where the entries are
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Where each entry's state is kept
    #[command(flatten)]
    pub state: StateArgs,
}

/// Where each entry's state is kept across restarts.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// Where each entry's state is kept across restarts: a reload still due, a check not yet
    /// run after a swap
    #[arg(
        long,
        env = "RECONFIG_STATE_DIR",
        default_value = "/var/lib/reconfig",
        value_name = "DIR"
    )]
    pub state_dir: PathBuf,
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
    /// Where the entries are
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Render limits
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Flags of `reconfig man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Print the page of this subcommand, reconfig-COMMAND(1), instead of reconfig(1)
    #[arg(value_name = "COMMAND", conflicts_with = "dir")]
    pub command: Option<String>,
    /// Write every page instead (reconfig.1 and reconfig-COMMAND.1 for each subcommand)
    /// into this directory, replacing earlier ones, and print their paths
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Flags of `reconfig migrate`: converting the configuration (`--out` or `--in-place`),
/// or copying the v2 data (`--data-from-v2`), one job per run.
#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("job")
        .required(true)
        .args(["out", "in_place", "data_from_v2"])
))]
pub struct MigrateArgs {
    /// Convert another tool's configuration: `confd` reads a confd directory (conf.d/*.toml,
    /// templates/) given with --cfgdir; without it, reconfig.rb's
    #[arg(long, value_enum, value_name = "TOOL", conflicts_with_all = ["in_place", "data_from_v2"])]
    pub from: Option<MigrateFrom>,
    /// reconfig.rb's config directory, holding conf.d/ and templates/ (with --from confd:
    /// confd's, e.g. /etc/confd)
    #[arg(
        short = 'c',
        long,
        visible_alias = "cfg-dir",
        default_value = "/etc/reconfig",
        value_name = "DIR",
        conflicts_with = "data_from_v2"
    )]
    pub cfgdir: PathBuf,
    /// Write the converted configuration (conf.d/ and templates/) under this directory
    #[arg(long, value_name = "OUT")]
    pub out: Option<PathBuf>,
    /// Convert the templates where they are, keeping each original as NAME.orig
    #[arg(long)]
    pub in_place: bool,
    /// Instead of converting: copy every key of etcd's v2 keyspace at this URL (e.g.
    /// http://10.0.0.1:4001) into v3 at the same paths (the connection flags say where v3
    /// is), read it back, and exit 1 listing every key that does not match
    #[arg(long, value_name = "URL")]
    pub data_from_v2: Option<String>,
    /// The v2 directory (or key) to copy, with everything below it
    #[arg(
        long,
        value_name = "PREFIX",
        default_value = "/",
        value_parser = parse_prefix,
        conflicts_with_all = ["out", "in_place"]
    )]
    pub data_prefix: String,
    /// After the copy, keep copying every v2 change into v3 until SIGINT or SIGTERM
    #[arg(long, conflicts_with_all = ["out", "in_place"])]
    pub follow: bool,
    /// etcd v3 connection (read with --data-from-v2 only: the environment may set it for
    /// every run)
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// The tools `reconfig migrate --from` converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MigrateFrom {
    /// confd: TOML resources and Go templates
    Confd,
}

fn parse_prefix(text: &str) -> Result<String, String> {
    validate_prefix(text)
        .map(|()| text.to_string())
        .map_err(|e| e.to_string())
}

/// A group or node name.
fn parse_name(text: &str) -> Result<String, String> {
    check_name(text).map(|()| text.to_string())
}

/// A lease TTL: whole seconds, at least one.
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = parse_duration(text)?;
    if ttl < Duration::from_secs(1) || ttl.subsec_nanos() != 0 {
        return Err(format!(
            "{text:?}: a lease lives whole seconds, at least 1s"
        ));
    }
    Ok(ttl)
}

/// An octal file mode such as `0600` or `640`.
fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| *mode <= 0o7777)
        .ok_or_else(|| format!("mode {text:?} must be octal, like 0600"))
}

impl RunArgs {
    /// What a run over the entries needs (`--onetime`'s settings).
    pub fn run_settings(&self) -> RunSettings {
        RunSettings {
            rollout: self.rollout.settings(),
            rollout_wait: self.rollout.rollout_wait,
            cfgdir: self.config.cfgdir.clone(),
            prefix: self.config.prefix.clone(),
            notreally: self.notreally,
            limits: self.limits.limits(),
            state_dir: self.state.state_dir.clone(),
            connection: self.connect.connection(),
        }
    }

    /// The daemon's settings.
    pub fn daemon_settings(&self) -> DaemonSettings {
        DaemonSettings {
            run: self.run_settings(),
            debounce: self.debounce,
            reload_interval: self.reload_interval,
            retry: self.retry.pacing(),
            monitoring: self.monitoring.monitoring(),
            command: self.command.clone(),
        }
    }
}

impl RolloutFlags {
    /// Where and as whom this node takes part in rollouts; the node's name defaults to the
    /// host name (checked when the node first takes part in a rollout).
    pub fn settings(&self) -> RolloutSettings {
        let node = self.node_name.clone().unwrap_or_else(|| {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        RolloutSettings {
            prefix: self.prefix.rollout_prefix.clone(),
            ttl: self.rollout_ttl,
            node,
        }
    }
}

impl RolloutStatusArgs {
    /// `reconfig rollout status`'s settings.
    pub fn settings(&self) -> RolloutStatusSettings {
        RolloutStatusSettings {
            group: self.group.clone(),
            prefix: self.prefix.rollout_prefix.clone(),
            connection: self.connect.connection(),
        }
    }
}

impl MonitoringArgs {
    /// Where health is served.
    pub fn monitoring(&self) -> Monitoring {
        Monitoring {
            metrics_addr: self.metrics_addr,
            unhealthy_after: self.unhealthy_after,
        }
    }
}

impl DispenseArgs {
    /// `reconfig dispense`'s settings.
    pub fn settings(&self) -> DispenseSettings {
        DispenseSettings {
            prefix: self.prefix.clone(),
            target: self.target.clone(),
            signal: self.signal,
            mode: self.mode,
            owner: self.owner.clone(),
            group: self.group.clone(),
            retry: self.retry.pacing(),
            monitoring: self.monitoring.monitoring(),
            connection: self.connect.connection(),
            command: self.command.clone(),
        }
    }
}

impl RenderArgs {
    /// `reconfig render`'s settings.
    pub fn settings(&self) -> RenderSettings {
        RenderSettings {
            cfgdir: self.config.cfgdir.clone(),
            prefix: self.config.prefix.clone(),
            data: self.data.clone(),
            entry: self.entry.clone(),
            limits: self.limits.limits(),
        }
    }
}

impl MigrateArgs {
    /// The conversion these flags ask for, when they do not copy v2 data: `--out` (which
    /// clap requires with `--from`) or `--in-place`.
    pub fn conversion(&self) -> Conversion {
        let cfgdir = self.cfgdir.clone();
        match (self.from, &self.out) {
            (Some(MigrateFrom::Confd), out) => Conversion::Confd {
                cfgdir,
                out: out.clone().expect("clap requires --out with --from"),
            },
            (None, Some(out)) if !self.in_place => Conversion::ReconfigRb {
                cfgdir,
                into: Destination::Out(out.clone()),
            },
            (None, _) => Conversion::ReconfigRb {
                cfgdir,
                into: Destination::InPlace,
            },
        }
    }
}

impl StatusArgs {
    /// `reconfig status`'s settings.
    pub fn settings(&self) -> StatusSettings {
        StatusSettings {
            cfgdir: self.config.cfgdir.clone(),
            prefix: self.config.prefix.clone(),
            state_dir: self.state.state_dir.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn daemon_flags_come_from_the_environment_below_the_command_line() {
        // Variables no other test reads.
        std::env::set_var("RECONFIG_RELOAD_INTERVAL", "7s");
        std::env::set_var("RECONFIG_UNHEALTHY_AFTER", "9s");
        let cli = Cli::try_parse_from(["reconfig", "--unhealthy-after", "3s"]).unwrap();
        std::env::remove_var("RECONFIG_RELOAD_INTERVAL");
        std::env::remove_var("RECONFIG_UNHEALTHY_AFTER");
        assert_eq!(cli.run.reload_interval, Duration::from_secs(7));
        assert_eq!(cli.run.monitoring.unhealthy_after, Duration::from_secs(3));
    }

    #[test]
    fn reconfig_rb_flags_parse() {
        let cli = Cli::try_parse_from([
            "reconfig", "-c", "/x", "-d", "-n", "-o", "-p", "/pre", "--host", "h", "--port", "1",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        let run = cli.run;
        assert_eq!(run.config.cfgdir, PathBuf::from("/x"));
        assert!(run.debug && run.notreally && run.onetime);
        assert_eq!(run.config.prefix, "/pre");
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
    fn dispense_takes_dispenser_flags_and_a_command() {
        let flags = "reconfig dispense -p /certs -t /config -s SIGHUP -m 0640 -o www -g ssl";
        let mut argv: Vec<&str> = flags.split(' ').collect();
        argv.extend(["--endpoints", "http://e:1", "--", "nginx", "-g"]);
        argv.push("daemon off;");
        let cli = Cli::try_parse_from(argv).unwrap();
        let Some(Command::Dispense(args)) = cli.command else {
            panic!("not dispense");
        };
        assert_eq!((args.prefix.as_str(), args.mode), ("/certs", 0o640));
        assert_eq!(args.signal, Some(Signal::SIGHUP));
        assert_eq!(args.owner.as_deref(), Some("www"));
        assert_eq!(args.connect.endpoints, ["http://e:1"]);
        assert_eq!(args.command, ["nginx", "-g", "daemon off;"]);
        let err = Cli::try_parse_from(["reconfig", "dispense", "-p", "/c", "-t", "d", "-m", "9"])
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn daemon_command_excludes_onetime() {
        let cli = Cli::try_parse_from(["reconfig", "-c", "/x", "--", "nginx", "-t"]).unwrap();
        assert_eq!(cli.run.command, ["nginx", "-t"]);
        let err = Cli::try_parse_from(["reconfig", "-o", "--", "nginx"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn monitoring_flags_parse_with_defaults() {
        let cli = Cli::try_parse_from(["reconfig"]).unwrap();
        assert_eq!(cli.run.monitoring.metrics_addr, None);
        assert_eq!(cli.run.monitoring.unhealthy_after, Duration::from_secs(30));
        let argv = "reconfig --metrics-addr 127.0.0.1:9100 --unhealthy-after 2m";
        let cli = Cli::try_parse_from(argv.split(' ')).unwrap();
        let addr: SocketAddr = "127.0.0.1:9100".parse().unwrap();
        assert_eq!(cli.run.monitoring.metrics_addr, Some(addr));
        assert_eq!(cli.run.monitoring.unhealthy_after, Duration::from_secs(120));
        let argv = "reconfig dispense -p /c -t d --metrics-addr [::1]:0";
        let Some(Command::Dispense(args)) = Cli::try_parse_from(argv.split(' ')).unwrap().command
        else {
            panic!("not dispense");
        };
        assert!(args.monitoring.metrics_addr.unwrap().is_ipv6());
        for bad in ["--metrics-addr localhost", "--unhealthy-after soon"] {
            let argv = format!("reconfig {bad}");
            let err = Cli::try_parse_from(argv.split(' ')).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn completions_and_man_are_subcommands() {
        let cli = Cli::try_parse_from(["reconfig", "completions", "zsh"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Completions { shell: Shell::Zsh })
        ));
        let cli = Cli::try_parse_from(["reconfig", "man"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Man(ManArgs {
                command: None,
                dir: None
            }))
        ));
        let cli = Cli::try_parse_from(["reconfig", "man", "render"]).unwrap();
        let Some(Command::Man(args)) = cli.command else {
            panic!("not man");
        };
        assert_eq!(args.command.as_deref(), Some("render"));
        let argv = ["reconfig", "man", "render", "--dir", "/d"];
        assert_eq!(Cli::try_parse_from(argv).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn migrate_takes_out_or_in_place() {
        let cli = Cli::try_parse_from(["reconfig", "migrate", "--cfgdir", "/rb", "--out", "/new"])
            .unwrap();
        let Some(Command::Migrate(args)) = cli.command else {
            panic!("not migrate");
        };
        assert_eq!(args.out, Some(PathBuf::from("/new")));
        assert!(!args.in_place);
        let cli = Cli::try_parse_from(["reconfig", "migrate", "--in-place"]).unwrap();
        let Some(Command::Migrate(args)) = cli.command else {
            panic!("not migrate");
        };
        assert_eq!(args.cfgdir, PathBuf::from("/etc/reconfig"));
        for argv in [
            &["reconfig", "migrate"][..],
            &["reconfig", "migrate", "--out", "o", "--in-place"],
            &[
                "reconfig",
                "migrate",
                "--out",
                "o",
                "--data-from-v2",
                "http://h:1",
            ],
            &["reconfig", "migrate", "--in-place", "--follow"],
            &["reconfig", "migrate", "--out", "o", "--data-prefix", "/a"],
            &[
                "reconfig",
                "migrate",
                "-c",
                "/rb",
                "--data-from-v2",
                "http://h:1",
            ],
            &[
                "reconfig",
                "migrate",
                "--data-from-v2",
                "http://h:1",
                "--data-prefix",
                "a",
            ],
        ] {
            assert_eq!(Cli::try_parse_from(argv).unwrap_err().exit_code(), 2);
        }
    }

    #[test]
    fn migrate_flags_become_the_conversion() {
        let conversion = |argv: &str| {
            let cli = Cli::try_parse_from(argv.split(' ')).unwrap();
            let Some(Command::Migrate(args)) = cli.command else {
                panic!("not migrate");
            };
            args.conversion()
        };
        assert!(matches!(
            conversion("reconfig migrate -c /rb --out /new"),
            Conversion::ReconfigRb { cfgdir, into: Destination::Out(out) }
                if cfgdir == Path::new("/rb") && out == Path::new("/new")
        ));
        assert!(matches!(
            conversion("reconfig migrate --in-place"),
            Conversion::ReconfigRb {
                into: Destination::InPlace,
                ..
            }
        ));
        assert!(matches!(
            conversion("reconfig migrate --from confd -c /etc/confd --out /new"),
            Conversion::Confd { cfgdir, out }
                if cfgdir == Path::new("/etc/confd") && out == Path::new("/new")
        ));
        // --from needs --out: the conversion never lacks one.
        for argv in [
            "reconfig migrate --from confd",
            "reconfig migrate --from confd --in-place",
        ] {
            let err = Cli::try_parse_from(argv.split(' ')).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{argv}");
        }
    }

    #[test]
    fn migrate_copies_v2_data_with_the_connection_flags() {
        let argv = "reconfig migrate --data-from-v2 http://h:4001 --data-prefix /app --follow \
                    --endpoints http://e:2379 --username u";
        let cli = Cli::try_parse_from(argv.split_whitespace()).unwrap();
        let Some(Command::Migrate(args)) = cli.command else {
            panic!("not migrate");
        };
        assert_eq!(args.data_from_v2.as_deref(), Some("http://h:4001"));
        assert_eq!((args.data_prefix.as_str(), args.follow), ("/app", true));
        assert_eq!(args.connect.endpoints, ["http://e:2379"]);
        let cli =
            Cli::try_parse_from(["reconfig", "migrate", "--data-from-v2", "http://h:1"]).unwrap();
        let Some(Command::Migrate(args)) = cli.command else {
            panic!("not migrate");
        };
        assert_eq!((args.data_prefix.as_str(), args.follow), ("/", false));
    }

    #[test]
    fn rollout_flags_parse_with_defaults() {
        let cli = Cli::try_parse_from(["reconfig"]).unwrap();
        let flags = &cli.run.rollout;
        assert_eq!(flags.prefix.rollout_prefix, "/reconfig/rollout/");
        assert_eq!(flags.rollout_ttl, Duration::from_secs(10));
        assert_eq!(flags.node_name, None);
        assert_eq!(flags.rollout_wait, Duration::from_secs(300));
        let argv = "reconfig --rollout-prefix /x --rollout-ttl 3s --node-name web-1";
        let cli = Cli::try_parse_from(argv.split(' ')).unwrap();
        assert_eq!(cli.run.rollout.prefix.rollout_prefix, "/x/");
        assert_eq!(cli.run.rollout.node_name.as_deref(), Some("web-1"));
        for bad in [
            "--rollout-prefix x",
            "--rollout-ttl 500ms",
            "--rollout-ttl 1.5s",
            "--node-name a/b",
        ] {
            let argv = format!("reconfig {bad}");
            let err = Cli::try_parse_from(argv.split(' ')).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
        let cli = Cli::try_parse_from(["reconfig", "rollout", "status", "web"]).unwrap();
        let Some(Command::Rollout(rollout)) = cli.command else {
            panic!("not rollout");
        };
        let RolloutCommand::Status(args) = rollout.command;
        assert_eq!(args.group, "web");
        let err = Cli::try_parse_from(["reconfig", "rollout", "status", "a b"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
