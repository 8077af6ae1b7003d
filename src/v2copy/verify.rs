//! The copy read back: every key written is read from v3 again and compared with what v2
//! had — the same bytes, on the lease it was written with (or on none) — and each key
//! that differs is one line saying how. A key whose v2 TTL has run out by then may be
//! gone: it expired, as it did in v2.

use std::collections::BTreeMap;
use std::fmt;

use etcd_client::{TxnOp, TxnOpResponse};
use tokio::time::Instant;

use super::batch::{self, Op};
use super::tree::Copied;
use crate::etcd::{Etcd, EtcdError};

/// A key as v3 holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its value.
    pub value: Vec<u8>,
    /// Its lease (0: none).
    pub lease: i64,
}

/// A key that does not match, and how.
#[derive(Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The key.
    pub key: String,
    /// How it differs.
    pub what: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.what)
    }
}

/// What the comparison found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Keys that match.
    pub matching: usize,
    /// Keys gone from v3 after their v2 expiry.
    pub expired: usize,
    /// Keys that do not match, in key order.
    pub mismatches: Vec<Mismatch>,
}

/// Reads `keys` from v3: each one found, with its value and lease; a key v3 refuses to
/// give back is a mismatch of its own.
pub async fn read_back<'a>(
    etcd: &Etcd,
    keys: impl Iterator<Item = &'a String>,
) -> Result<(BTreeMap<String, Found>, Vec<Mismatch>), EtcdError> {
    let ops = keys
        .map(|key| Op {
            key: key.clone(),
            op: TxnOp::get(key.as_str(), None),
            bytes: key.len(),
        })
        .collect();
    let answers = batch::run(etcd, ops).await?;
    let mut found = BTreeMap::new();
    for (key, answer) in answers.answered {
        let TxnOpResponse::Get(get) = answer else {
            continue;
        };
        if let Some(kv) = get.kvs().first() {
            let value = kv.value().to_vec();
            found.insert(
                key,
                Found {
                    value,
                    lease: kv.lease(),
                },
            );
        }
    }
    let refused = answers.refused.into_iter().map(|r| Mismatch {
        key: r.key,
        what: format!("cannot be read back: {}", r.error),
    });
    Ok((found, refused.collect()))
}

/// Compares what was copied with what v3 holds, at `now`.
pub fn compare(
    copied: &BTreeMap<String, Copied>,
    found: &BTreeMap<String, Found>,
    now: Instant,
) -> Verdict {
    let mut verdict = Verdict::default();
    for (key, want) in copied {
        let mismatch = |what: String| Mismatch {
            key: key.clone(),
            what,
        };
        let Some(have) = found.get(key) else {
            if want.expires.is_some_and(|expires| expires <= now) {
                verdict.expired += 1;
            } else {
                verdict.mismatches.push(mismatch("not in v3".into()));
            }
            continue;
        };
        if have.value != want.value.as_bytes() {
            verdict.mismatches.push(mismatch(format!(
                "v3 holds {} bytes that differ from the {} bytes of v2",
                have.value.len(),
                want.value.len()
            )));
        } else if have.lease != want.lease {
            let what = match (want.lease, have.lease) {
                (0, lease) => format!("v3 has it on lease {lease:x}, v2 has no TTL on it"),
                (_, 0) => "v3 has it without a lease, v2 has a TTL on it".to_string(),
                (want, have) => format!("v3 has it on lease {have:x}, not on {want:x}"),
            };
            verdict.mismatches.push(mismatch(what));
        } else {
            verdict.matching += 1;
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn copied(value: &str, expires: Option<Instant>, lease: i64) -> Copied {
        Copied {
            value: value.into(),
            expires,
            lease,
        }
    }

    fn found(value: &str, lease: i64) -> Found {
        Found {
            value: value.as_bytes().to_vec(),
            lease,
        }
    }

    #[test]
    fn every_difference_is_one_line_naming_the_key() {
        let now = Instant::now();
        let past = Some(now - Duration::from_secs(1));
        let future = Some(now + Duration::from_secs(30));
        let copied: BTreeMap<String, Copied> = [
            ("/same", copied("a\"\n%+&ü", None, 0)),
            ("/empty", copied("", None, 0)),
            ("/ttl", copied("t", future, 7)),
            ("/expired", copied("t", past, 7)),
            ("/missing", copied("m", future, 7)),
            ("/changed", copied("old", None, 0)),
            ("/unleased", copied("t", future, 7)),
            ("/leased", copied("t", None, 0)),
            ("/other-lease", copied("t", future, 7)),
        ]
        .into_iter()
        .map(|(k, c)| (k.to_string(), c))
        .collect();
        let found: BTreeMap<String, Found> = [
            ("/same", found("a\"\n%+&ü", 0)),
            ("/empty", found("", 0)),
            ("/ttl", found("t", 7)),
            ("/changed", found("newer", 0)),
            ("/unleased", found("t", 0)),
            ("/leased", found("t", 0x1f)),
            ("/other-lease", found("t", 8)),
            ("/extra", found("not copied", 0)),
        ]
        .into_iter()
        .map(|(k, f)| (k.to_string(), f))
        .collect();
        let verdict = compare(&copied, &found, now);
        let lines: Vec<String> = verdict.mismatches.iter().map(Mismatch::to_string).collect();
        assert_eq!(
            lines,
            [
                "/changed: v3 holds 5 bytes that differ from the 3 bytes of v2",
                "/leased: v3 has it on lease 1f, v2 has no TTL on it",
                "/missing: not in v3",
                "/other-lease: v3 has it on lease 8, not on 7",
                "/unleased: v3 has it without a lease, v2 has a TTL on it",
            ]
        );
        assert_eq!((verdict.matching, verdict.expired), (3, 1));
    }

    #[test]
    fn a_copy_of_itself_matches() {
        let now = Instant::now();
        let copied: BTreeMap<String, Copied> = (0..100)
            .map(|i| (format!("/k/{i}"), copied(&i.to_string(), None, 0)))
            .collect();
        let found = copied
            .iter()
            .map(|(k, c)| (k.clone(), found(&c.value, 0)))
            .collect();
        let verdict = compare(&copied, &found, now);
        assert_eq!(
            verdict,
            Verdict {
                matching: 100,
                ..Verdict::default()
            }
        );
    }
}
