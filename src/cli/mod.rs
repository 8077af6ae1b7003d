//! The edge of the program: the command line (reconfig.rb's flags, kebab-case aliases,
//! the subcommands), the log set-up, and how a run ends (its exit status). `main` parses
//! here, runs a mode, and reports.

mod args;
mod exit;
mod logging;

pub use args::{
    completions, man, Cli, Command, DispenseArgs, MigrateArgs, RenderArgs, RunArgs, StatusArgs,
};
pub use exit::{Exit, Fatal};
pub use logging::{init as init_logging, LogControl, LogFormat};
