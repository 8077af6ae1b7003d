//! The `etcd-util` binary: parse the flags and call into the library.

use std::process::ExitCode;

use clap::Parser;
use etcd_util::{run, Args};

fn main() -> ExitCode {
    let args = Args::parse();
    if args.man {
        let page = etcd_util::manual()
            .page(None)
            .expect("the program's own page exists");
        return print(&page);
    }
    if let Some(shell) = args.completions {
        return print(&etcd_util::completions(shell));
    }
    let runtime = tokio::runtime::Runtime::new().expect("cannot start the tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Writes a generated page or script to stdout.
fn print(text: &[u8]) -> ExitCode {
    reconfig::print_generated("etcd-util", text).into()
}
