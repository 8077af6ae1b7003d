//! Why talking to etcd failed, sorted by what an operator can do about it: wait
//! (unreachable), fix a certificate, a password or a role, or read etcd's own message.
//! Every error keeps the client library's error as its cause and names the endpoints.

use std::time::Duration;

use super::options::ConnectError;

/// Why talking to etcd failed; each message names the endpoints or the key, on one line.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// Nothing answered: refused, reset, no route.
    #[error("etcd unreachable at {endpoints}: {}", one_line(.source))]
    Unreachable {
        /// The endpoints tried.
        endpoints: String,
        /// The transport's error.
        source: etcd_client::Error,
    },
    /// Nothing answered in time.
    #[error("etcd unreachable at {endpoints}: no answer within {after:?}")]
    TimedOut {
        /// The endpoints tried.
        endpoints: String,
        /// The time limit.
        after: Duration,
    },
    /// The TLS handshake failed: a certificate or a name is wrong, not etcd away.
    #[error("TLS with {endpoints} failed: {}{hint}", one_line(.source))]
    Tls {
        /// The endpoints tried.
        endpoints: String,
        /// rustls's or the transport's error.
        source: etcd_client::Error,
        /// What etcd's hang-up likely means, when it is one.
        hint: &'static str,
    },
    /// etcd answered with an error (compaction, too many requests, ...).
    #[error("etcd at {endpoints}: {}", one_line(.source))]
    Request {
        /// The endpoints tried.
        endpoints: String,
        /// etcd's error.
        source: etcd_client::Error,
    },
    /// etcd refused the credentials (or wants some): retrying cannot help.
    #[error("etcd at {endpoints} refused {}: {}", who(user.as_deref()), one_line(.source))]
    Auth {
        /// The endpoints tried.
        endpoints: String,
        /// The user name given, if any (never the password).
        user: Option<String>,
        /// etcd's error.
        source: etcd_client::Error,
    },
    /// etcd's RBAC refused the request: the user's role does not cover the key.
    #[error(
        "etcd at {endpoints}: permission denied{} for {} (the role does not cover it)",
        key.as_deref().map(|k| format!(" reading {k}")).unwrap_or_default(),
        who(user.as_deref())
    )]
    PermissionDenied {
        /// The endpoints tried.
        endpoints: String,
        /// The user name given, if any.
        user: Option<String>,
        /// The key refused, when known.
        key: Option<String>,
    },
    /// The connection cannot be set up (bad endpoint URL, TLS configuration).
    #[error("cannot set up the connection to {endpoints}: {}", one_line(.source))]
    Config {
        /// The endpoints.
        endpoints: String,
        /// The client library's error.
        source: etcd_client::Error,
    },
    /// Endpoints, SRV records or TLS files could not be worked out.
    #[error(transparent)]
    Setup(#[from] ConnectError),
}

impl EtcdError {
    /// A response larger than a gRPC message may be (refused by etcd or by the client):
    /// the same request asking for less can succeed.
    pub fn is_too_large(&self) -> bool {
        let EtcdError::Request {
            source: etcd_client::Error::GRpcStatus(status),
            ..
        } = self
        else {
            return false;
        };
        matches!(
            status.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        )
    }

    /// Whether waiting may help: etcd (or the DNS server) was unreachable. Credentials,
    /// files, records and permissions stay wrong until someone fixes them.
    pub fn is_transient(&self) -> bool {
        match self {
            EtcdError::Unreachable { .. } | EtcdError::TimedOut { .. } => true,
            EtcdError::Setup(e) => e.is_transient(),
            _ => false,
        }
    }

    /// etcd refused a client certificate with an alert or, as TLS 1.3 ends the handshake
    /// before the server checks it, by hanging up: at connect time over TLS, say what it
    /// means.
    pub(super) fn at_tls_handshake(self) -> EtcdError {
        let hung_up = |source: &etcd_client::Error| {
            let text = one_line(source);
            ["broken pipe", "connection closed", "connection reset"]
                .iter()
                .any(|m| text.contains(m))
        };
        let refused =
            |source: &etcd_client::Error| one_line(source).contains("received fatal alert");
        let (endpoints, source) = match self {
            EtcdError::Unreachable { endpoints, source } if hung_up(&source) => (endpoints, source),
            EtcdError::Tls {
                endpoints, source, ..
            } if refused(&source) => (endpoints, source),
            other => return other,
        };
        EtcdError::Tls {
            endpoints,
            source,
            hint: ": etcd ended the connection, so it likely refuses the client certificate \
                   (give --ssl_cert/--ssl_key signed by a CA in etcd's --trusted-ca-file)",
        }
    }
}

/// The subject of an auth message.
fn who(user: Option<&str>) -> String {
    match user {
        Some(name) => format!("user {name:?}"),
        None => "the request without a user (set ETCD_USERNAME and ETCD_PASSWORD)".into(),
    }
}

/// An etcd-client error as [`EtcdError`]: refused credentials and permissions apart,
/// transport failures as unreachable, anything else as etcd's own message.
pub(super) fn classify(
    endpoints: &str,
    user: Option<&str>,
    error: etcd_client::Error,
) -> EtcdError {
    let endpoints = endpoints.to_string();
    let user = user.map(str::to_string);
    let transport = match &error {
        // A status etcd sent has no source; one made from a broken connection has.
        etcd_client::Error::GRpcStatus(status) => {
            status.code() == tonic::Code::Unavailable || std::error::Error::source(status).is_some()
        }
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    };
    if transport {
        let text = one_line(&error);
        return if TLS_FAILURES.iter().any(|m| text.contains(m)) {
            EtcdError::Tls {
                endpoints,
                source: error,
                hint: "",
            }
        } else {
            EtcdError::Unreachable {
                endpoints,
                source: error,
            }
        };
    }
    let code = match &error {
        etcd_client::Error::GRpcStatus(status) if is_auth_failure(status.message()) => {
            tonic::Code::Unauthenticated
        }
        etcd_client::Error::GRpcStatus(status) => status.code(),
        _ => tonic::Code::Unknown,
    };
    match code {
        tonic::Code::PermissionDenied => EtcdError::PermissionDenied {
            endpoints,
            user,
            key: None,
        },
        tonic::Code::Unauthenticated => EtcdError::Auth {
            endpoints,
            user,
            source: error,
        },
        _ => EtcdError::Request {
            endpoints,
            source: error,
        },
    }
}

/// A setup error of the client library (bad URL, TLS configuration).
pub(super) fn setup(endpoints: &str, user: Option<&str>, error: etcd_client::Error) -> EtcdError {
    match error {
        etcd_client::Error::GRpcStatus(_) => classify(endpoints, user, error),
        source => EtcdError::Config {
            endpoints: endpoints.to_string(),
            source,
        },
    }
}

/// rustls's words for a handshake that failed on a certificate or a name.
const TLS_FAILURES: [&str; 3] = [
    "invalid peer certificate",
    "received fatal alert",
    "peer sent no certificates",
];

/// etcd's messages for refused credentials, which come with several status codes
/// (InvalidArgument for a wrong password, FailedPrecondition when auth is off, ...).
fn is_auth_failure(message: &str) -> bool {
    [
        "authentication failed",
        "authentication is not enabled",
        "user name is empty",
        "invalid auth token",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// One line from an etcd-client error: etcd's own message, or the transport's reason with
/// its causes (connection refused, TLS failure, ...).
fn one_line(error: &etcd_client::Error) -> String {
    let text = match error {
        etcd_client::Error::GRpcStatus(status) if !status.message().is_empty() => {
            status.message().to_string()
        }
        other => other.to_string(),
    };
    let source = match error {
        etcd_client::Error::GRpcStatus(status) => std::error::Error::source(status),
        other => std::error::Error::source(other),
    };
    with_causes(text, source).replace('\n', " ")
}

/// `text` followed by each cause in `source`'s chain that it does not already say.
pub(crate) fn with_causes(mut text: String, mut source: Option<&dyn std::error::Error>) -> String {
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::{Code, Status};

    fn from_etcd(code: Code, message: &str, user: Option<&str>) -> EtcdError {
        let status = etcd_client::Error::GRpcStatus(Status::new(code, message));
        classify("http://e:1", user, status)
    }

    #[test]
    fn refused_credentials_are_auth_errors_naming_the_user_only() {
        let wrong = from_etcd(
            Code::InvalidArgument,
            "etcdserver: authentication failed, invalid user ID or password",
            Some("app"),
        );
        assert!(matches!(wrong, EtcdError::Auth { .. }) && !wrong.is_transient());
        assert_eq!(
            wrong.to_string(),
            "etcd at http://e:1 refused user \"app\": etcdserver: authentication failed, \
             invalid user ID or password"
        );
        let anonymous = from_etcd(
            Code::InvalidArgument,
            "etcdserver: user name is empty",
            None,
        );
        assert!(
            anonymous.to_string().contains("set ETCD_USERNAME"),
            "{anonymous}"
        );
        let other = from_etcd(
            Code::InvalidArgument,
            "etcdserver: too many operations",
            None,
        );
        assert!(matches!(other, EtcdError::Request { .. }), "{other}");
    }

    #[test]
    fn a_response_too_large_for_one_message_is_told_apart() {
        let decoded = "Error, decoded message length too large: found 3 bytes, the limit is: 2";
        assert!(from_etcd(Code::OutOfRange, decoded, None).is_too_large());
        let sent = "grpc: trying to send message larger than max (3 vs. 2)";
        assert!(from_etcd(Code::ResourceExhausted, sent, None).is_too_large());
        let other = from_etcd(
            Code::InvalidArgument,
            "etcdserver: too many operations",
            None,
        );
        assert!(!other.is_too_large());
    }

    #[test]
    fn permission_denied_and_unavailable_are_told_apart() {
        let denied = from_etcd(
            Code::PermissionDenied,
            "etcdserver: permission denied",
            Some("a"),
        );
        assert!(matches!(
            denied,
            EtcdError::PermissionDenied { key: None, .. }
        ));
        let away = from_etcd(Code::Unavailable, "connection refused", Some("a"));
        assert!(matches!(away, EtcdError::Unreachable { .. }) && away.is_transient());
    }

    #[test]
    fn a_hang_up_over_tls_points_at_the_client_certificate() {
        let unreachable = |text: &str| EtcdError::Unreachable {
            endpoints: "https://e:1".into(),
            source: etcd_client::Error::GRpcStatus(Status::new(Code::Unavailable, text)),
        };
        let explained =
            unreachable("transport error: connection error: broken pipe").at_tls_handshake();
        assert!(matches!(explained, EtcdError::Tls { .. }) && !explained.is_transient());
        assert!(
            explained.to_string().contains("client certificate"),
            "{explained}"
        );
        let refused = unreachable("tcp connect error: Connection refused").at_tls_handshake();
        assert!(matches!(refused, EtcdError::Unreachable { .. }));
    }
}
