//! How a run ends: the process exit status the modes decide on, and the failures that end
//! a run early, each with its status. `main` turns them into the exit code and is the one
//! place such a failure is printed.

use std::fmt::Display;
use std::process::ExitCode;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything succeeded.
    Ok,
    /// An entry was invalid or failed, or etcd could not be reached.
    Failed,
    /// The command line or the config directory is unusable.
    Usage,
    /// The supervised command ended with this status; it is passed on as it is.
    Child(u8),
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(match exit {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Child(code) => code,
        })
    }
}

/// A failure that ends a run before it could do its job.
pub trait Fatal: Display {
    /// The exit status it ends the run with.
    fn exit(&self) -> Exit;
}
