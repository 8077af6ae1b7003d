//! The `reconfig` binary: parse the flags, set up logging, run the mode, and turn how it
//! ended into the exit code — the one place a failure that ends the run is printed.

use std::process::ExitCode;

use clap::Parser;
use reconfig::{
    Cli, Command, Exit, Fatal, ManArgs, ManualError, MigrateArgs, MigrateError, RolloutCommand,
};

fn main() -> ExitCode {
    if let Some(answer) = reconfig::confd_flag(std::env::args_os()) {
        eprintln!("reconfig: {answer}");
        return Exit::Usage.into();
    }
    let cli = Cli::parse();
    let ended = match &cli.command {
        Some(Command::Render(args)) => {
            reconfig::init_logging(false, reconfig::LogFormat::Text);
            report(reconfig::render_offline(&args.settings()))
        }
        Some(Command::Completions { shell }) => print(&reconfig::completions(*shell)),
        Some(Command::Man(args)) => {
            reconfig::init_logging(false, reconfig::LogFormat::Text);
            report(man(args))
        }
        Some(Command::Status(args)) => {
            reconfig::init_logging(false, reconfig::LogFormat::Text);
            report(reconfig::status(&args.settings()))
        }
        Some(Command::Rollout(args)) => {
            reconfig::init_logging(false, reconfig::LogFormat::Text);
            match &args.command {
                RolloutCommand::Status(args) => {
                    report(runtime().block_on(reconfig::rollout_status(&args.settings())))
                }
            }
        }
        Some(Command::Migrate(args)) => {
            reconfig::init_logging(false, reconfig::LogFormat::Text);
            match &args.data_from_v2 {
                Some(url) => {
                    let source = reconfig::V2Source {
                        url: url.clone(),
                        prefix: args.data_prefix.clone(),
                        follow: args.follow,
                    };
                    let connection = args.connect.connection();
                    report(runtime().block_on(reconfig::copy_v2_data(&source, &connection)))
                }
                None => report(migrate(args)),
            }
        }
        Some(Command::Dispense(args)) => {
            reconfig::init_logging(args.debug, args.log_format);
            let settings = args.settings();
            let stopped = std::future::pending();
            report(runtime().block_on(reconfig::run_dispense(&settings, stopped)))
        }
        None => {
            let log = reconfig::init_logging(cli.run.debug, cli.run.log_format);
            if cli.run.onetime {
                report(runtime().block_on(reconfig::onetime(&cli.run.run_settings())))
            } else {
                let settings = cli.run.daemon_settings();
                let mut log = log;
                let toggle = move || log.toggle_debug();
                let stopped = std::future::pending();
                report(runtime().block_on(reconfig::run_daemon(&settings, toggle, stopped)))
            }
        }
    };
    ended.into()
}

/// `reconfig migrate` (reconfig.rb's or confd's configuration): one line per problem or
/// note on stdout, the summary last; 0 when everything converted, 1 when anything needs a
/// person.
fn migrate(args: &MigrateArgs) -> Result<Exit, MigrateError> {
    let report = reconfig::migrate(&args.conversion())?;
    for line in report.lines() {
        println!("{line}");
    }
    println!("{}", report.summary());
    Ok(if report.is_clean() {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

/// `reconfig man`: a page on stdout, or every page into `--dir` (their paths on stdout).
fn man(args: &ManArgs) -> Result<Exit, ManualError> {
    let manual = reconfig::manual();
    let Some(dir) = &args.dir else {
        return Ok(print(&manual.page(args.command.as_deref())?));
    };
    for path in manual.write_all(dir)? {
        println!("{}", path.display());
    }
    Ok(Exit::Ok)
}

/// Writes a generated page or script to stdout.
fn print(text: &[u8]) -> Exit {
    reconfig::print_generated("reconfig", text)
}

/// How a mode ended; a failure that ended it is logged, once.
fn report(result: Result<Exit, impl Fatal>) -> Exit {
    result.unwrap_or_else(|failure| {
        tracing::error!("{failure}");
        failure.exit()
    })
}

/// The async runtime, one thread for every mode: the work is waiting on etcd and the
/// disk, and a change is cheapest handled on the thread that received it (every hand-over
/// between threads is a wake-up, which on a fleet's shared CPUs costs more than the
/// render). At most eight more threads sync files to disk at once when many are written
/// together — enough for their syncs to share the filesystem's journal commits — or finish
/// renders that run long; they get the main thread's usual 8 MiB of stack, for templates
/// whose includes and macro calls nest deep.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(8)
        .thread_stack_size(8 << 20)
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime")
}
