//! reconfig keeps local configuration files in step with data in etcd.
//!
//! The folders follow the data's path through the program:
//!
//! - `config`: the `conf.d` entries — a key, a template and its delimiters, a target, commands.
//! - `etcd`: the connection (TLS, auth, SRV), consistent reads of one revision, the watch.
//! - `template`: the data model of a snapshot, Erubis-style tags over Tera, the filters and
//!   functions templates use.
//! - `apply`: a render to its target — compare, preview, stage, check, swap, roll back,
//!   reload — through the `fsx` crate (`reconfig-fsx`), the one place files are created.
//! - `pipeline`: one entry's step (read → render → apply), `--onetime` and `reconfig render`.
//! - `daemon`: every change followed into the targets until told to stop.
//! - `rollout`: a change of an entry with a `rollout` object reaching the nodes of its group
//!   a few at a time, coordinated through etcd.
//!
//! Beside them: `dispense` (an etcd prefix mirrored into a directory), `migrate`
//! (reconfig.rb's or confd's configuration converted by the `reconfig-migrate` crate,
//! handed this crate's template engine), `v2copy` (reconfig.rb's data copied from etcd's
//! v2 keyspace into v3), `service` (what the long-running modes share: signals, the
//! supervised child, health, systemd), `fdlimit` (the open-file limit they raise and every
//! started process gets back) and `cli` (the edge: flags, logging, exit status). `docs/design.md` walks the same path with each
//! guarantee and the code that enforces it.

mod apply;
mod cli;
mod config;
mod daemon;
mod dispense;
mod etcd;
mod exit;
mod fdlimit;
mod migrate;
mod pipeline;
mod rollout;
mod service;
mod state;
mod template;
mod v2copy;

pub use clap_complete::Shell;
pub use cli::{
    completion_script, completions, confd_flag, init_logging, manual, print_generated, Cli,
    Command, ConnectArgs, LogControl, LogFormat, ManArgs, Manual, ManualError, MigrateArgs,
    PageNotes, RolloutCommand, RunArgs, CONNECT_ENVIRONMENT,
};
pub use config::{Pattern, PatternError};
pub use daemon::{run as run_daemon, DaemonError, DaemonSettings};
pub use dispense::{run as run_dispense, DispenseError, DispenseSettings};
pub use etcd::watch::{Range, SessionError, Sink, WatchLoop};
pub use etcd::{dir_prefix, in_tree_bytes, Connection, Etcd, EtcdError, Snapshot};
pub use exit::{Exit, Fatal};
pub use migrate::migrate;
pub use pipeline::{
    onetime, render_offline, status, OfflineError, OnetimeError, RenderSettings, RunSettings,
    StatusError, StatusSettings,
};
pub use reconfig_migrate::{Conversion, Destination, MigrateError, Report};
pub use rollout::{rollout_status, RolloutStatusError, RolloutStatusSettings};
pub use template::model::{altdata as altdata_model, data as data_model, ModelError};
pub use template::{
    compile, Data, RenderInput, RenderLimits, Template, TemplateError, TemplateSet,
};
pub use v2copy::{copy as copy_v2_data, CopyError, Source as V2Source};
