//! The `reconfig` binary: parse the flags, set up logging, and call into the library.

use std::process::ExitCode;

use clap::Parser;
use reconfig::cli::{self, Cli, Command};
use reconfig::sync::{self, Exit};
use reconfig::{daemon, dispense, logging, migrate, render};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let exit = match &cli.command {
        Some(Command::Render(args)) => {
            logging::init(false, logging::LogFormat::Text);
            render::run(args)
        }
        Some(Command::Completions { shell }) => print(&cli::completions(*shell)),
        Some(Command::Man) => print(&cli::man()),
        Some(Command::Migrate(args)) => migrate_command(args),
        Some(Command::Dispense(args)) => {
            logging::init(args.debug, args.log_format);
            let runtime = runtime(false);
            // The supervised command's exit status is passed on, whatever it is.
            return ExitCode::from(runtime.block_on(dispense::run(args)));
        }
        None => {
            let log = logging::init(cli.run.debug, cli.run.log_format);
            let runtime = runtime(cli.run.onetime);
            if cli.run.onetime {
                runtime.block_on(sync::onetime(&cli.run))
            } else {
                runtime.block_on(daemon::run(&cli.run, log))
            }
        }
    };
    ExitCode::from(exit as u8)
}

/// `reconfig migrate`: one line per problem on stdout, the summary last; exit 0 when every
/// template converted, 1 when any needs a person, 2 when the migration could not run.
fn migrate_command(args: &cli::MigrateArgs) -> Exit {
    match migrate::run(args) {
        Ok(report) => {
            for problem in &report.problems {
                println!("{problem}");
            }
            println!("{}", report.summary());
            if report.is_clean() {
                Exit::Ok
            } else {
                Exit::Failed
            }
        }
        Err(e) => {
            eprintln!("reconfig: {e}");
            Exit::Usage
        }
    }
}

/// The async runtime: one thread for a one-shot run; for the long-running modes two
/// workers (the work is waiting on etcd and the disk, and every thread costs memory). At
/// most eight threads sync files to disk at once — enough for their syncs to share the
/// filesystem's journal commits.
fn runtime(one_shot: bool) -> tokio::runtime::Runtime {
    let mut builder = if one_shot {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2);
        builder
    };
    builder
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime")
}

/// Writes generated text to stdout; a closed pipe or full disk is an error, not a panic.
fn print(bytes: &[u8]) -> Exit {
    use std::io::Write;
    match std::io::stdout().lock().write_all(bytes) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("reconfig: cannot write to stdout: {e}");
            Exit::Failed
        }
    }
}
