//! etcd-util's manual page and completion scripts, generated from its flags by reconfig's
//! manual code: how it exits and which environment variables it reads.

use clap::CommandFactory;
use reconfig::{completion_script, Manual, PageNotes, Shell, CONNECT_ENVIRONMENT};

use crate::Args;

/// The extra sections of etcd-util's page (it has no subcommands).
fn notes(subcommand: Option<&str>) -> PageNotes {
    assert!(subcommand.is_none(), "etcd-util has no subcommands");
    PageNotes {
        exit_status: &[
            ("0", "The operation succeeded."),
            (
                "1",
                "It failed: no such key, etcd unreachable within --connect-timeout, \
                 permission denied.",
            ),
            ("2", "Usage error: bad or missing flags."),
        ],
        environment: &[CONNECT_ENVIRONMENT],
    }
}

/// etcd-util's manual: the one page `etcd-util(1)`, which refers to `reconfig(1)`.
pub fn manual() -> Manual {
    Manual::new(Args::command(), &["reconfig"], notes)
}

/// `etcd-util --completions SHELL`: the completion script, generated from the flags.
pub fn completions(shell: Shell) -> Vec<u8> {
    completion_script(Args::command(), shell)
}
