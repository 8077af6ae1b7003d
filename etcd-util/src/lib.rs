//! etcd-util: ad-hoc key editing with reconfig.rb's flags and output, so scripts that
//! parse it keep working. It connects through reconfig's shared connection code, so it
//! takes the same endpoints, environment, TLS and auth options as `reconfig`.
//!
//! Exit codes: 0 ok, 1 the operation failed (missing key, etcd error), 2 usage error.

use std::io::Write;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use etcd_client::{DeleteOptions, EventType, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions};
use reconfig::backoff::Backoff;
use reconfig::connect::ConnectArgs;
use reconfig::etcd::{Etcd, EtcdError};
use reconfig::snapshot::{dir_prefix, tree_range, ModelError};
use tokio::signal::unix::{signal, SignalKind};

/// Command-line flags (reconfig.rb's etcd-util, plus the shared connection flags).
#[derive(Debug, Parser)]
#[command(name = "etcd-util", disable_version_flag = true)]
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
    /// The value to SET
    #[arg(short = 'v', long, value_name = "VALUE")]
    pub value: Option<String>,
    /// SET only: the key expires after this many seconds (attached lease)
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub ttl: Option<i64>,
    /// GET/DEL/WATCH the whole tree below the key
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Print connection details on stderr
    #[arg(short = 'd', long)]
    pub debug: bool,
    /// Connect and print the server version, the leader and the members
    #[arg(long)]
    pub version: bool,
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
}

impl UtilError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            UtilError::Usage(_) => 2,
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
    Ok(key)
}

/// Runs one invocation.
pub async fn run(args: Args) -> Result<(), UtilError> {
    let key = if args.version {
        None
    } else {
        Some(validate(&args)?)
    };
    let options = args.connect.resolve().await?;
    if args.debug {
        eprintln!("connecting to {}", options.endpoints.join(","));
    }
    let etcd = Etcd::connect(&options).await?;
    let Some(key) = key else {
        return version(&etcd).await;
    };
    match args.operation {
        Operation::Get => get(&etcd, &key, args.recursive).await,
        Operation::Set => set(&etcd, &key, args.value.as_deref().unwrap_or(""), args.ttl).await,
        Operation::Del => del(&etcd, &key, args.recursive).await,
        Operation::Watch => watch(&etcd, &key, args.recursive).await,
    }
}

/// GET: `{"/k": "v"}`, the tree with `-r`, or the children of a directory-like key.
async fn get(etcd: &Etcd, key: &str, recursive: bool) -> Result<(), UtilError> {
    let snapshot = etcd.snapshot([key]).await?;
    let data = snapshot.data_for(key, recursive).map_err(|e| match e {
        ModelError::Missing(k) => UtilError::KeyNotFound(k),
        other => UtilError::Model(other),
    })?;
    let text = serde_json::to_string_pretty(&data).expect("JSON values always serialize");
    println!("{text}");
    Ok(())
}

/// SET, with a lease when a TTL is given.
async fn set(etcd: &Etcd, key: &str, value: &str, ttl: Option<i64>) -> Result<(), UtilError> {
    let mut client = etcd.client().clone();
    let mut options = None;
    match ttl {
        Some(ttl) => {
            eprintln!("Setting {key} to {value} TTL={ttl}s");
            let lease = etcd.bounded(client.lease_grant(ttl, None)).await?;
            options = Some(PutOptions::new().with_lease(lease.id()));
        }
        None => eprintln!("Setting {key} to {value}"),
    }
    etcd.bounded(client.put(key, value, options)).await?;
    Ok(())
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
    eprintln!(
        "Deleted {key} ({deleted} key{})",
        if deleted == 1 { "" } else { "s" }
    );
    Ok(())
}

/// WATCH: one JSON line per event until SIGINT/SIGTERM; resumes after a broken stream.
async fn watch(etcd: &Etcd, key: &str, recursive: bool) -> Result<(), UtilError> {
    let (mut int, mut term) = (
        signal(SignalKind::interrupt()).map_err(|e| UtilError::Usage(e.to_string()))?,
        signal(SignalKind::terminate()).map_err(|e| UtilError::Usage(e.to_string()))?,
    );
    let mut next_revision = 0;
    let mut backoff = Backoff::new(Duration::from_secs(5));
    loop {
        let session = watch_session(etcd, key, recursive, &mut next_revision, &mut backoff);
        let ended = tokio::select! {
            r = session => r,
            _ = int.recv() => return Ok(()),
            _ = term.recv() => return Ok(()),
        };
        if let Err(e) = ended {
            eprintln!("watch interrupted ({e}); resuming");
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            _ = int.recv() => return Ok(()),
            _ = term.recv() => return Ok(()),
        }
    }
}

async fn watch_session(
    etcd: &Etcd,
    key: &str,
    recursive: bool,
    next_revision: &mut i64,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let mut options = WatchOptions::new().with_start_revision(*next_revision);
    let start = if recursive {
        let (start, end) = tree_range(key);
        options = options.with_range(end);
        start
    } else {
        key.as_bytes().to_vec()
    };
    let mut client = etcd.client().watch_client();
    let mut stream = etcd
        .bounded(client.watch(start, Some(options)))
        .await
        .map_err(|e| e.to_string())?;
    let stdout = std::io::stdout();
    loop {
        let response = stream
            .message()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("stream closed")?;
        if response.created() {
            backoff.reset();
        }
        if response.canceled() {
            return Err(format!("watch canceled: {}", response.cancel_reason()));
        }
        let mut out = stdout.lock();
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let name = String::from_utf8_lossy(kv.key());
            if recursive && !reconfig::snapshot::in_tree(key, &name) {
                continue;
            }
            let line = match event.event_type() {
                EventType::Put => serde_json::json!({
                    "type": "PUT",
                    "key": name,
                    "value": String::from_utf8_lossy(kv.value()),
                    "revision": kv.mod_revision(),
                }),
                EventType::Delete => serde_json::json!({
                    "type": "DELETE",
                    "key": name,
                    "revision": kv.mod_revision(),
                }),
            };
            let _ = writeln!(out, "{line}");
            *next_revision = kv.mod_revision() + 1;
        }
        let _ = out.flush();
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
