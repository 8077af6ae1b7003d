//! Many single-key requests to v3 as few transactions as etcd takes (at most 128
//! operations and about a megabyte each), and, when etcd refuses one (a role that does not
//! cover every key), the same requests key by key, so that every key the user may write
//! is written and every refused one is named.

use etcd_client::{Txn, TxnOp, TxnOpResponse};

use crate::etcd::{Etcd, EtcdError, MAX_TXN_OPS};

/// Bytes of keys and values in one transaction: under etcd's default request limit
/// (1.5 MiB), whatever the mix of sizes.
const TXN_BYTES: usize = 1 << 20;

/// One request about one key.
pub struct Op {
    /// The key, for messages.
    pub key: String,
    /// The request.
    pub op: TxnOp,
    /// Its size in bytes (key and value), for sizing transactions.
    pub bytes: usize,
}

/// A key etcd refused, with the reason.
#[derive(Debug)]
pub struct Refused {
    /// The key.
    pub key: String,
    /// etcd's refusal (permission denied, too large, ...).
    pub error: EtcdError,
}

/// What a run of requests came to: each answered key with etcd's answer, and the keys
/// refused.
#[derive(Default)]
pub struct Answers {
    /// Key and answer, in the order asked.
    pub answered: Vec<(String, TxnOpResponse)>,
    /// Keys refused.
    pub refused: Vec<Refused>,
}

/// Runs `ops` in transactions. Fails only when etcd cannot be reached (trying again may
/// help; every request is idempotent); a refusal is per key in the answers.
pub async fn run(etcd: &Etcd, ops: Vec<Op>) -> Result<Answers, EtcdError> {
    let mut answers = Answers::default();
    let mut batch: Vec<Op> = Vec::new();
    let mut bytes = 0;
    for op in ops {
        if !batch.is_empty() && (batch.len() == MAX_TXN_OPS || bytes + op.bytes > TXN_BYTES) {
            run_batch(etcd, std::mem::take(&mut batch), &mut answers).await?;
            bytes = 0;
        }
        bytes += op.bytes;
        batch.push(op);
    }
    if !batch.is_empty() {
        run_batch(etcd, batch, &mut answers).await?;
    }
    Ok(answers)
}

/// One transaction; when etcd refuses it, one transaction per key.
async fn run_batch(etcd: &Etcd, batch: Vec<Op>, answers: &mut Answers) -> Result<(), EtcdError> {
    let ops: Vec<TxnOp> = batch.iter().map(|op| op.op.clone()).collect();
    match txn(etcd, ops).await {
        Ok(responses) => {
            let keys = batch.into_iter().map(|op| op.key);
            answers.answered.extend(keys.zip(responses));
            Ok(())
        }
        Err(e) if e.is_transient() => Err(e),
        Err(_) if batch.len() > 1 => {
            for op in batch {
                match txn(etcd, vec![op.op]).await {
                    Ok(mut responses) => answers
                        .answered
                        .extend(responses.pop().map(|r| (op.key, r))),
                    Err(e) if e.is_transient() => return Err(e),
                    Err(error) => answers.refused.push(Refused { key: op.key, error }),
                }
            }
            Ok(())
        }
        Err(error) => {
            let key = batch
                .into_iter()
                .next()
                .map(|op| op.key)
                .unwrap_or_default();
            answers.refused.push(Refused { key, error });
            Ok(())
        }
    }
}

async fn txn(etcd: &Etcd, ops: Vec<TxnOp>) -> Result<Vec<TxnOpResponse>, EtcdError> {
    let response = etcd
        .bounded(etcd.kv().txn(Txn::new().and_then(ops)))
        .await?;
    Ok(response.op_responses())
}
