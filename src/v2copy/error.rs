//! Why a copy of v2 data could not run or go on, and the exit status it ends with: a bad
//! URL is a usage error, anything else a failure.

use super::api::V2Error;
use crate::etcd::EtcdError;
use crate::exit::{Exit, Fatal};
use crate::service::SignalError;

/// Why the copy could not run or go on.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The v2 side: the URL, the server, the prefix.
    #[error(transparent)]
    V2(#[from] V2Error),
    /// The v3 side could not be reached or refused the connection.
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// `--follow` could not handle SIGINT and SIGTERM.
    #[error(transparent)]
    Signals(#[from] SignalError),
}

impl Fatal for CopyError {
    fn exit(&self) -> Exit {
        match self {
            CopyError::V2(V2Error::BadUrl { .. }) => Exit::Usage,
            _ => Exit::Failed,
        }
    }
}
