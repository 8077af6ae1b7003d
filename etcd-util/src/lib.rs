//! etcd-util: ad-hoc key editing with reconfig.rb's flags and output, so scripts that
//! parse it keep working. It connects through reconfig's shared connection code, so it
//! takes the same endpoints, environment, TLS and auth options as `reconfig`.
//!
//! Exit codes: 0 ok, 1 the operation failed (missing key, etcd error), 2 usage error.
//! `--man` and `--completions SHELL` print its manual page and completion scripts, which
//! reconfig's manual code generates from these flags.

mod manual;

mod value;

use std::io::Write;

use clap::{Parser, ValueEnum};
use etcd_client::proto::PbEvent;
use etcd_client::{DeleteOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use reconfig::{
    data_model, dir_prefix, in_tree_bytes, ConnectArgs, Etcd, EtcdError, ModelError, Range,
    SessionError, Shell, Sink, WatchLoop,
};
use tokio::signal::unix::{signal, SignalKind};

pub use manual::{completions, manual};
pub use value::ValueError;

/// The flags of the key editing, which printing the manual or completions does not take.
const KEY_EDITING: [&str; 6] = ["key", "operation", "value", "ttl", "recursive", "version"];

/// Command-line flags (reconfig.rb's etcd-util, plus the shared connection flags).
#[derive(Debug, Parser)]
#[command(
    name = "etcd-util",
    version,
    disable_version_flag = true,
    about = "Ad-hoc etcd key editing with reconfig.rb's flags and output: GET, SET, DEL, WATCH"
)]
#[command(mut_arg("ssl", |a| a.short('s')))]
pub struct Args {
    /// The key to operate on
    #[arg(short = 'k', long, value_name = "KEY")]
    pub key: Option<String>,
    /// GET, SET, DEL or WATCH (any case)
    #[arg(
        short = 'o',
        long,
        value_enum,
        ignore_case = true,
        default_value = "get"
    )]
    pub operation: Operation,
    /// The value to SET; `-` reads it from stdin, `@FILE` from FILE (byte for byte)
    #[arg(short = 'v', long, value_name = "VALUE")]
    pub value: Option<String>,
    /// SET only: the key expires after this many seconds (attached lease)
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub ttl: Option<i64>,
    /// GET/DEL/WATCH the whole tree below the key
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// DEL -r of `/` (every key under it) goes ahead only with this
    #[arg(long)]
    pub force: bool,
    /// Print connection details on stderr
    #[arg(short = 'd', long)]
    pub debug: bool,
    /// Connect and print the server version, the leader and the members
    #[arg(long)]
    pub version: bool,
    /// Print etcd-util's manual page (roff) and exit
    #[arg(long, conflicts_with_all = KEY_EDITING, conflicts_with = "completions")]
    pub man: bool,
    /// Print a completion script for this shell and exit
    #[arg(long, value_name = "SHELL", conflicts_with_all = KEY_EDITING)]
    pub completions: Option<Shell>,
    /// etcd connection
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// What to do with the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Operation {
    /// Print the value (or tree) as JSON.
    Get,
    /// Store a value.
    Set,
    /// Delete the key (or tree).
    Del,
    /// Print changes as JSON lines until interrupted.
    Watch,
}

/// Why etcd-util failed; the exit code follows from the kind.
#[derive(Debug, thiserror::Error)]
pub enum UtilError {
    /// The flags are wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Nothing at the key (exit 1).
    #[error("KeyNotFound {0}")]
    KeyNotFound(String),
    /// etcd refused or could not be reached (exit 1).
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// A value could not be shown as text (exit 1).
    #[error(transparent)]
    Model(ModelError),
    /// SET's value could not be read from stdin or its file (exit 2).
    #[error(transparent)]
    Value(#[from] ValueError),
}

impl UtilError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            UtilError::Usage(_) | UtilError::Value(_) => 2,
            _ => 1,
        }
    }
}

/// Checks the flag combinations clap cannot express; returns the key.
fn validate(args: &Args) -> Result<String, UtilError> {
    let key = args
        .key
        .clone()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| UtilError::Usage("missing --key".into()))?;
    if args.operation == Operation::Set && args.value.is_none() {
        return Err(UtilError::Usage("SET needs --value".into()));
    }
    if args.ttl.is_some() && args.operation != Operation::Set {
        return Err(UtilError::Usage("--ttl only applies to SET".into()));
    }
    if args.ttl.is_some_and(|t| t <= 0) {
        return Err(UtilError::Usage(
            "--ttl must be a positive number of seconds".into(),
        ));
    }
    // Every key in etcd-util's world is below `/`, and `//` is `/` to reconfig.
    let root = key.chars().all(|c| c == '/');
    if args.operation == Operation::Del && args.recursive && root && !args.force {
        return Err(UtilError::Usage(format!(
            "DEL -r -k {key} would delete every key under /: add --force to mean it"
        )));
    }
    Ok(key)
}

/// Runs one invocation.
pub async fn run(args: Args) -> Result<(), UtilError> {
    let key = if args.version {
        None
    } else {
        Some(validate(&args)?)
    };
    let value = match (&args.value, args.operation) {
        (Some(spec), Operation::Set) => value::read_value(spec)?,
        _ => Vec::new(),
    };
    let etcd = Etcd::connect(&args.connect.connection()).await?;
    if args.debug {
        eprintln!("connected to {}", etcd.endpoints());
    }
    let Some(key) = key else {
        return version(&etcd).await;
    };
    match args.operation {
        Operation::Get => get(&etcd, &key, args.recursive).await,
        Operation::Set => set(&etcd, &key, value, args.ttl).await,
        Operation::Del => del(&etcd, &key, args.recursive).await,
        Operation::Watch => watch(&etcd, &key, args.recursive).await,
    }
}

/// GET: `{"/k": "v"}`, the tree with `-r`, or the children of a directory-like key.
async fn get(etcd: &Etcd, key: &str, recursive: bool) -> Result<(), UtilError> {
    let snapshot = etcd.snapshot([key]).await?;
    if snapshot.tree(key).next().is_none() {
        return Err(UtilError::KeyNotFound(key.to_string()));
    }
    let data = data_model(&snapshot, key, recursive).map_err(|e| match e {
        ModelError::Missing(k) => UtilError::KeyNotFound(k),
        other => UtilError::Model(other),
    })?;
    let text = serde_json::to_string_pretty(&data).expect("JSON values always serialize");
    println!("{text}");
    Ok(())
}

/// SET, with a lease when a TTL is given. The value's length is shown, never the value.
async fn set(etcd: &Etcd, key: &str, value: Vec<u8>, ttl: Option<i64>) -> Result<(), UtilError> {
    let mut client = etcd.client().clone();
    let mut options = None;
    let size = plural(value.len(), "byte");
    match ttl {
        Some(ttl) => {
            eprintln!("Setting {key} ({size}) TTL={ttl}s");
            let lease = etcd.bounded(client.lease_grant(ttl, None)).await?;
            options = Some(PutOptions::new().with_lease(lease.id()));
        }
        None => eprintln!("Setting {key} ({size})"),
    }
    etcd.bounded(client.put(key, value, options)).await?;
    Ok(())
}

/// `1 byte`, `7 bytes`.
fn plural<N: std::fmt::Display + PartialEq + From<u8>>(n: N, noun: &str) -> String {
    if n == N::from(1) {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// DEL of the key, or with `-r` of the key and everything below it.
async fn del(etcd: &Etcd, key: &str, recursive: bool) -> Result<(), UtilError> {
    let mut client = etcd.client().clone();
    let mut ops = vec![TxnOp::delete(key, None)];
    if recursive {
        ops.push(TxnOp::delete(
            dir_prefix(key),
            Some(DeleteOptions::new().with_prefix()),
        ));
    }
    let response = etcd.bounded(client.txn(Txn::new().and_then(ops))).await?;
    let deleted: i64 = response
        .op_responses()
        .iter()
        .map(|op| match op {
            TxnOpResponse::Delete(d) => d.deleted(),
            _ => 0,
        })
        .sum();
    if deleted == 0 {
        return Err(UtilError::KeyNotFound(key.to_string()));
    }
    eprintln!("Deleted {key} ({})", plural(deleted, "key"));
    Ok(())
}

/// WATCH: one JSON line per event until SIGINT/SIGTERM; resumes after a broken stream
/// (with a fresh auth token, at the revision after the last one printed).
async fn watch(etcd: &Etcd, key: &str, recursive: bool) -> Result<(), UtilError> {
    let (mut int, mut term) = (
        signal(SignalKind::interrupt()).map_err(|e| UtilError::Usage(e.to_string()))?,
        signal(SignalKind::terminate()).map_err(|e| UtilError::Usage(e.to_string()))?,
    );
    let range = if recursive {
        Range::tree(key, 0)
    } else {
        Range {
            start: key.as_bytes().to_vec(),
            end: Vec::new(),
            next: 0,
        }
    };
    let printer = Printer {
        key: key.to_string(),
        recursive,
    };
    tokio::select! {
        () = WatchLoop::new(etcd, vec![range], printer).run() => {}
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

/// WATCH's sink: events as JSON lines on stdout; what broke or was lost on stderr.
struct Printer {
    key: String,
    recursive: bool,
}

impl Sink for Printer {
    fn events(&mut self, _index: usize, events: Vec<PbEvent>) {
        let mut out = std::io::stdout().lock();
        for kv in events
            .iter()
            .filter_map(|e| e.kv.as_ref().map(|kv| (e, kv)))
        {
            let (event, kv) = kv;
            if self.recursive && !in_tree_bytes(&self.key, &kv.key) {
                continue;
            }
            let name = String::from_utf8_lossy(&kv.key);
            let line = if event.r#type == 0 {
                serde_json::json!({
                    "type": "PUT",
                    "key": name,
                    "value": String::from_utf8_lossy(&kv.value),
                    "revision": kv.mod_revision,
                })
            } else {
                serde_json::json!({
                    "type": "DELETE",
                    "key": name,
                    "revision": kv.mod_revision,
                })
            };
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }

    fn flush(&mut self) {}

    async fn compacted(&mut self, _index: usize, from: i64, oldest: i64) -> Result<i64, EtcdError> {
        eprintln!(
            "revisions {from} to {} of {} were compacted away: their events are lost; \
             resuming at revision {oldest}, the oldest etcd kept",
            oldest - 1,
            self.key
        );
        Ok(oldest)
    }

    fn state(&mut self, broken: Option<&SessionError>) {
        match broken {
            Some(e) => eprintln!("watch interrupted ({e}); resuming"),
            None => eprintln!("watch resumed"),
        }
    }
}

/// `--version`: the server version, the leader and every member.
async fn version(etcd: &Etcd) -> Result<(), UtilError> {
    let mut client = etcd.client().clone();
    let status = etcd.bounded(client.status()).await?;
    let members = etcd.bounded(client.member_list()).await?;
    println!("etcd version: {}", status.version());
    for member in members.members() {
        let role = if member.id() == status.leader() {
            "leader"
        } else {
            "member"
        };
        println!(
            "{role}: {} (id {:x}) {}",
            member.name(),
            member.id(),
            member.client_urls().join(",")
        );
    }
    Ok(())
}
