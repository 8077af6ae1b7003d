//! The open-file limit. The long-running modes raise their soft limit to the hard one at
//! start, as most servers do, so that clients of `--metrics-addr`, large trees and many
//! entries never starve reconfig's own work of descriptors. Every process reconfig starts
//! gets back the soft limit reconfig was given: programs that use `select()`, or close every
//! descriptor up to the limit, expect the usual one.

use std::sync::OnceLock;

use nix::sys::resource::{getrlimit, rlim_t, setrlimit, Resource};
use tracing::{debug, warn};

/// The soft and hard limits reconfig was started with, once it has raised its own.
static GIVEN: OnceLock<(rlim_t, rlim_t)> = OnceLock::new();

/// Raises the soft open-file limit to the hard one and says so at debug level; a process
/// that cannot raise it runs on with the limit it has.
pub fn raise() {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Err(e) => warn!("cannot read the open-file limit: {e}"),
        Ok((soft, hard)) if soft >= hard => {
            debug!("open-file limit {soft}: already the hard limit");
        }
        Ok((soft, hard)) => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                GIVEN.get_or_init(|| (soft, hard));
                debug!("open-file limit raised from {soft} to the hard limit, {hard}; started processes get {soft}");
            }
            Err(e) => warn!("cannot raise the open-file limit from {soft} to {hard}: {e}"),
        },
    }
}

/// Gives the process `command` starts the soft limit reconfig was started with.
pub fn hand_back(command: &mut tokio::process::Command) {
    if let Some(&(soft, hard)) = GIVEN.get() {
        // SAFETY: the closure runs in the child between fork and exec; it makes one
        // async-signal-safe system call (setrlimit) and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                setrlimit(Resource::RLIMIT_NOFILE, soft, hard).map_err(std::io::Error::from)
            });
        }
    }
}
