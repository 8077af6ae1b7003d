//! The edge of the program: the command line (reconfig.rb's flags, kebab-case aliases,
//! the subcommands, confd's flags answered), the log set-up, how a run ends (its exit status), and the manual
//! pages and completion scripts generated from the flags. `main` parses here, runs a mode,
//! and reports.

mod args;
mod confd_flags;
mod connect;
mod logging;
mod manual;

pub use args::{Cli, Command, ManArgs, MigrateArgs, RolloutCommand, RunArgs};
pub use confd_flags::confd_flag;
pub use connect::{ConnectArgs, CONNECT_ENVIRONMENT};
pub use logging::{init as init_logging, LogControl, LogFormat};
pub use manual::reconfig::{completions, manual};
pub use manual::{completion_script, print_generated, Manual, ManualError, PageNotes};
