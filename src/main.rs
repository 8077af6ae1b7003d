//! The `reconfig` binary: parse the flags, set up logging, and call into the library.

use std::process::ExitCode;

use clap::Parser;
use reconfig::cli::{self, Cli, Command};
use reconfig::sync::{self, Exit};
use reconfig::{daemon, dispense, logging, render};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let exit = match &cli.command {
        Some(Command::Render(args)) => {
            logging::init(false, logging::LogFormat::Text);
            render::run(args)
        }
        Some(Command::Completions { shell }) => print(&cli::completions(*shell)),
        Some(Command::Man) => print(&cli::man()),
        Some(Command::Dispense(args)) => {
            logging::init(args.debug, args.log_format);
            let runtime = tokio::runtime::Runtime::new().expect("cannot start the tokio runtime");
            // The supervised command's exit status is passed on, whatever it is.
            return ExitCode::from(runtime.block_on(dispense::run(args)));
        }
        None => {
            let log = logging::init(cli.run.debug, cli.run.log_format);
            let runtime = tokio::runtime::Runtime::new().expect("cannot start the tokio runtime");
            if cli.run.onetime {
                runtime.block_on(sync::onetime(&cli.run))
            } else {
                runtime.block_on(daemon::run(&cli.run, log))
            }
        }
    };
    ExitCode::from(exit as u8)
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
