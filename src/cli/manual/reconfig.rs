//! reconfig's manual: for the program and each subcommand, how it exits and which
//! environment variables it reads (the flags come from the definitions in `args`).

use clap::CommandFactory;

use clap_complete::Shell;

use super::{completion_script, EnvVar, Manual, PageNotes};
use crate::cli::args::Cli;
use crate::cli::connect::CONNECT_ENVIRONMENT;

/// The pages of the companion program, listed on every page.
const RELATED: &[&str] = &["etcd-util"];

/// The log set-up's variables (every command that logs).
const LOG_ENVIRONMENT: &[EnvVar] = &[
    (
        "RUST_LOG",
        "Log filter, such as warn or reconfig=debug,info; info when unset (--debug wins).",
    ),
    (
        "NO_COLOR",
        "When set, nothing is coloured (log lines and diffs are, on a terminal).",
    ),
];

/// What systemd hands the long-running modes.
const SYSTEMD_ENVIRONMENT: &[EnvVar] = &[
    (
        "NOTIFY_SOCKET",
        "Set by systemd for Type=notify: READY=1 is sent once every target has been \
         rendered once, STOPPING=1 on the way out.",
    ),
    (
        "WATCHDOG_USEC",
        "Set by systemd for WatchdogSec=: the watchdog is pinged at half that interval.",
    ),
];

/// What check and reload commands see.
const COMMAND_ENVIRONMENT: &[EnvVar] = &[(
    "RECONFIG_ID, RECONFIG_TARGET, RECONFIG_KEY",
    "Set for every check and reload command: the entry's id, target and key. No command, \
     and no supervised command, inherits ETCD_PASSWORD.",
)];

/// Where each entry's state is kept.
const STATE_ENVIRONMENT: &[EnvVar] = &[(
    "RECONFIG_STATE_DIR",
    "The state directory, when --state-dir is not given (default /var/lib/reconfig).",
)];

/// What templates see.
const TEMPLATE_ENVIRONMENT: &[EnvVar] = &[(
    "other variables",
    "Templates read them with getenv(name=\"NAME\"); ETCD_PASSWORD is refused.",
)];

/// Statuses every command shares.
const USAGE: (&str, &str) = (
    "2",
    "Usage error: bad flags, a missing configuration directory, no valid entry.",
);
const PRINTED: &[(&str, &str)] = &[
    ("0", "The text was written."),
    ("1", "It could not be written (a closed pipe, a full disk)."),
    ("2", "Usage error: bad flags, an unknown name."),
];

/// The extra sections of reconfig's page (`None`) and of each subcommand's.
fn notes(subcommand: Option<&str>) -> PageNotes {
    match subcommand {
        None => PageNotes {
            exit_status: &[
                (
                    "0",
                    "Everything succeeded; the daemon was stopped by SIGTERM or SIGINT.",
                ),
                (
                    "1",
                    "--onetime: an entry was invalid or failed (render, write, check or \
                     reload), or etcd could not be reached within --connect-timeout or \
                     refused the credentials. The daemon: what waiting cannot fix (wrong \
                     credentials, certificates or SRV records), or --metrics-addr cannot \
                     be bound; it waits for an unreachable etcd.",
                ),
                (
                    "2",
                    "Usage error: bad flags, a prefix without a leading /, a missing \
                     configuration directory, no valid entry, --onetime with a command.",
                ),
                (
                    "other",
                    "With -- CMD ARGS: the supervised command's exit status, 128+N when \
                     signal N killed it, 127 when it was not found, 126 when it could not \
                     be run.",
                ),
            ],
            environment: &[
                CONNECT_ENVIRONMENT,
                STATE_ENVIRONMENT,
                LOG_ENVIRONMENT,
                SYSTEMD_ENVIRONMENT,
                COMMAND_ENVIRONMENT,
                TEMPLATE_ENVIRONMENT,
            ],
        },
        Some("render") => PageNotes {
            exit_status: &[
                ("0", "Every entry rendered."),
                (
                    "1",
                    "An entry failed, the --data file could not be read, or --entry names \
                     no valid entry.",
                ),
                USAGE,
            ],
            environment: &[LOG_ENVIRONMENT, TEMPLATE_ENVIRONMENT],
        },
        Some("dispense") => PageNotes {
            exit_status: &[
                ("0", "Stopped by SIGTERM or SIGINT."),
                (
                    "1",
                    "What waiting cannot fix (wrong credentials, certificates or SRV \
                     records), or --metrics-addr cannot be bound; an unreachable etcd is \
                     waited for.",
                ),
                (
                    "2",
                    "Usage error: bad flags, an unknown --owner or --group.",
                ),
                (
                    "other",
                    "With -- CMD ARGS: the supervised command's exit status, 128+N when \
                     signal N killed it.",
                ),
            ],
            environment: &[CONNECT_ENVIRONMENT, LOG_ENVIRONMENT, SYSTEMD_ENVIRONMENT],
        },
        Some("migrate") => PageNotes {
            exit_status: &[
                (
                    "0",
                    "Everything was converted; with --data-from-v2, every key copied \
                     matches (with --follow: stopped by SIGINT or SIGTERM).",
                ),
                (
                    "1",
                    "A template, entry or file needs a person: the report says which and \
                     where; with --data-from-v2, a key does not match or was refused.",
                ),
                (
                    "2",
                    "Usage error, or the migration could not run at all (an unreadable \
                     configuration, an output that cannot be written, a file changed while \
                     read).",
                ),
            ],
            environment: &[CONNECT_ENVIRONMENT, LOG_ENVIRONMENT],
        },
        Some("status") => PageNotes {
            exit_status: &[
                (
                    "0",
                    "Nothing is due: every entry's service was reloaded with what its \
                     target holds, or the entry has no record.",
                ),
                (
                    "1",
                    "A reload or a check is still due for some entry (see its line).",
                ),
                (
                    "2",
                    "Usage error, or the configuration or state directory cannot be used.",
                ),
            ],
            environment: &[STATE_ENVIRONMENT],
        },
        Some("rollout" | "rollout status") => PageNotes {
            exit_status: &[
                (
                    "0",
                    "The group's rollout goes on, or is over, or the group has none.",
                ),
                (
                    "1",
                    "The group's current rollout is held (a node failed it), or etcd could \
                     not be reached within --connect-timeout or refused the read.",
                ),
                ("2", "Usage error: bad flags, a group that is not a name."),
            ],
            environment: &[CONNECT_ENVIRONMENT, LOG_ENVIRONMENT],
        },
        Some("completions" | "man") => PageNotes {
            exit_status: PRINTED,
            environment: &[],
        },
        Some(other) => panic!("reconfig's manual has no notes for `reconfig {other}`"),
    }
}

/// reconfig's manual: `reconfig(1)` and a page for every subcommand.
pub fn manual() -> Manual {
    Manual::new(Cli::command(), RELATED, notes)
}

/// `reconfig completions SHELL`: the completion script, generated from the flags.
pub fn completions(shell: Shell) -> Vec<u8> {
    completion_script(Cli::command(), shell)
}
