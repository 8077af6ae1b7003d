//! confd's own configuration file (`confd.toml`): the backend's connection becomes the
//! environment of reconfig's unit (`ETCD_ENDPOINTS`, `ETCD_USERNAME`, `ETCD_PASSWORD`,
//! `RECONFIG_SSL_*`, …, in an `EnvironmentFile`), and its `prefix` replaces each
//! resource's, as in confd.

/// What `confd.toml` converts to.
#[derive(Debug, Default, PartialEq)]
pub struct Settings {
    /// Variables for the unit's environment file, in order.
    pub env: Vec<(String, String)>,
    /// confd's global prefix, which replaces every resource's.
    pub prefix: Option<String>,
    /// What needs a person.
    pub problems: Vec<String>,
    /// What converted but is worth knowing.
    pub notes: Vec<String>,
}

/// Reads `confd.toml`'s text; the error is one line.
pub fn parse(text: &str) -> Result<Settings, String> {
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("not valid TOML: {}", e.message()))?;
    let mut s = Settings::default();
    let string = |name: &str| doc.get(name).and_then(|v| v.as_str()).map(str::to_string);
    let flag = |name: &str| {
        doc.get(name)
            .and_then(toml::Value::as_bool)
            .unwrap_or(false)
    };
    match string("backend").as_deref() {
        Some("etcdv3") => {}
        None | Some("etcd") => s.problems.push(
            "backend etcd (confd's default) reads etcd's v2 API; reconfig reads v3: copy the \
             data with `reconfig migrate --data-from-v2`, then the converted entries read it"
                .into(),
        ),
        Some(other) => s.problems.push(format!(
            "backend {other}: reconfig reads etcd v3 only; move the data into etcd first"
        )),
    }
    let scheme = string("scheme").unwrap_or_else(|| "http".into());
    let nodes: Vec<String> = doc
        .get("nodes")
        .and_then(|n| n.as_array())
        .map(|n| {
            n.iter()
                .filter_map(|v| v.as_str())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if !nodes.is_empty() {
        let urls: Vec<String> = nodes
            .iter()
            .map(|n| {
                if n.contains("://") {
                    n.clone()
                } else {
                    format!("{scheme}://{n}")
                }
            })
            .collect();
        s.env.push(("ETCD_ENDPOINTS".into(), urls.join(",")));
    }
    for (key, var) in [
        ("client_cakeys", "RECONFIG_SSL_CAFILE"),
        ("client_cert", "RECONFIG_SSL_CERT"),
        ("client_key", "RECONFIG_SSL_KEY"),
        ("srv_domain", "RECONFIG_SRV_DOMAIN"),
        ("srv_record", "RECONFIG_SRV"),
    ] {
        if let Some(v) = string(key).filter(|v| !v.is_empty()) {
            s.env.push((var.into(), v));
        }
    }
    if flag("basic_auth") {
        for (key, var) in [("username", "ETCD_USERNAME"), ("password", "ETCD_PASSWORD")] {
            if let Some(v) = string(key) {
                s.env.push((var.into(), v));
            }
        }
    }
    if string("log-level").as_deref() == Some("debug") {
        s.env.push(("RECONFIG_DEBUG".into(), "true".into()));
    }
    if flag("client_insecure") {
        s.problems.push(
            "client_insecure: reconfig always verifies etcd's certificate; give its CA with \
             client_cakeys"
                .into(),
        );
    }
    if flag("sync-only") {
        s.problems.push(
            "sync-only: confd ran no check_cmd or reload_cmd; remove checkcmd and reloadcmd \
             from the entries that should not run them"
                .into(),
        );
    }
    if flag("noop") {
        s.notes.push(
            "note: noop: confd wrote nothing; reconfig writes (run it with --notreally to \
             preview)"
                .into(),
        );
    }
    if doc.contains_key("interval") || doc.contains_key("watch") {
        s.notes.push(
            "note: interval and watch: reconfig always watches etcd and renders each change".into(),
        );
    }
    if let Some(p) = string("prefix").filter(|p| !p.is_empty()) {
        s.prefix = Some(if p.starts_with('/') {
            p
        } else {
            format!("/{p}")
        });
    }
    Ok(s)
}

/// The environment file: `NAME=value` lines, quoted where systemd needs it.
pub fn env_file(env: &[(String, String)]) -> String {
    let mut out =
        String::from("# reconfig's settings, converted from confd.toml by reconfig migrate\n");
    for (name, value) in env {
        if value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/:.,_-@+=".contains(c))
        {
            out.push_str(&format!("{name}={value}\n"));
        } else {
            let quoted = value.replace('\\', "\\\\").replace('"', "\\\"");
            out.push_str(&format!("{name}=\"{quoted}\"\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_becomes_the_units_environment() {
        let s = parse(
            "backend = \"etcdv3\"\nnodes = [\"10.0.0.1:2379\", \"https://e2:2379\"]\n\
             scheme = \"https\"\nclient_cert = \"/c.pem\"\nclient_key = \"/k.pem\"\n\
             client_cakeys = \"/ca.pem\"\nbasic_auth = true\nusername = \"u\"\n\
             password = \"p w\"\nprefix = \"production\"\nwatch = true\nlog-level = \"debug\"\n",
        )
        .unwrap();
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(s.prefix.as_deref(), Some("/production"));
        let file = env_file(&s.env);
        assert!(file.contains("ETCD_ENDPOINTS=https://10.0.0.1:2379,https://e2:2379\n"));
        assert!(file.contains("RECONFIG_SSL_CERT=/c.pem\n"));
        assert!(file.contains("ETCD_PASSWORD=\"p w\"\n"));
        assert!(file.contains("RECONFIG_DEBUG=true\n"));
        assert_eq!(s.notes.len(), 1);
        assert_eq!(parse("backend = \"consul\"\n").unwrap().problems.len(), 1);
    }
}
