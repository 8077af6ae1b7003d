//! One confd template resource (`conf.d/*.toml`, the `[template]` table as confd decodes
//! it) and the reconfig entry it becomes.

use serde_json::{json, Map, Value};

use super::gotmpl::ast::{Arg, Node};
use super::gotmpl::parser;

/// The fields of a resource that carry over.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub src: String,
    pub dest: String,
    pub keys: Vec<String>,
    /// With a leading `/`, as confd makes it (`/` when unset).
    pub prefix: String,
    pub owner: Option<String>,
    pub group: Option<String>,
    /// The mode as confd reads it (`strconv.ParseUint(mode, 0, 32)`).
    pub mode: Option<u32>,
    pub check_cmd: Option<String>,
    pub reload_cmd: Option<String>,
}

/// Reads a resource file's text; the error is one line.
pub fn parse(text: &str) -> Result<Resource, String> {
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("not valid TOML: {}", e.message()))?;
    // confd's TOML decoder matches field names without regard to case.
    let template = doc
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("template"))
        .and_then(|(_, v)| v.as_table())
        .ok_or("no [template] table")?;
    let get = |name: &str| {
        template
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let string = |name: &str| -> Result<Option<String>, String> {
        match get(name) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{name} must be a string")),
        }
    };
    let id = |name: &str| -> Result<Option<String>, String> {
        match get(name) {
            None => Ok(None),
            Some(toml::Value::Integer(-1)) => Ok(None),
            Some(toml::Value::Integer(n)) if *n >= 0 => Ok(Some(n.to_string())),
            Some(_) => Err(format!("{name} must be a number")),
        }
    };
    let src = string("src")?
        .filter(|s| !s.is_empty())
        .ok_or("empty src template")?;
    let dest = string("dest")?.filter(|s| !s.is_empty()).ok_or("no dest")?;
    let keys = match get("keys") {
        None => vec![],
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|k| k.as_str().map(str::to_string).ok_or("keys must be strings"))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("keys must be a list of strings".into()),
    };
    let mut prefix = string("prefix")?.unwrap_or_default();
    if !prefix.starts_with('/') {
        prefix.insert(0, '/');
    }
    let mode = match string("mode")? {
        None => None,
        Some(m) if m.is_empty() => None,
        Some(m) => {
            Some(parse_mode(&m).ok_or_else(|| format!("mode {m:?}: confd cannot read it either"))?)
        }
    };
    Ok(Resource {
        src,
        dest,
        keys,
        prefix,
        owner: id("uid")?.or(string("owner")?),
        group: id("gid")?.or(string("group")?),
        mode,
        check_cmd: string("check_cmd")?.filter(|c| !c.trim().is_empty()),
        reload_cmd: string("reload_cmd")?.filter(|c| !c.trim().is_empty()),
    })
}

/// `strconv.ParseUint(mode, 0, 32)`: `0644` is octal, `644` decimal (as confd reads it).
fn parse_mode(mode: &str) -> Option<u32> {
    let (digits, radix) = if let Some(rest) = mode.strip_prefix("0o").or(mode.strip_prefix("0O")) {
        (rest, 8)
    } else if let Some(rest) = mode.strip_prefix("0x").or(mode.strip_prefix("0X")) {
        (rest, 16)
    } else if let Some(rest) = mode.strip_prefix("0b").or(mode.strip_prefix("0B")) {
        (rest, 2)
    } else if mode.len() > 1 && mode.starts_with('0') {
        (&mode[1..], 8)
    } else {
        (mode, 10)
    };
    u32::from_str_radix(digits, radix).ok()
}

/// Go's `path.Join(prefix, key)`.
pub fn join(prefix: &str, key: &str) -> String {
    super::gopath::clean(&format!("{prefix}/{key}"))
}

/// A `check_cmd` for reconfig: confd runs it as a Go template whose `.src` is the staged
/// file, which is reconfig's `{{src}}`; anything else in it needs a person.
pub fn check_cmd(cmd: &str, dest: &str) -> Result<(String, Vec<String>), String> {
    let trees = parser::parse("checkcmd", cmd, &|_| false)
        .map_err(|e| format!("check_cmd: Go cannot parse it ({})", e.message))?;
    let mut out = String::new();
    let mut notes = vec![];
    for node in &trees["checkcmd"] {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action { pipe, .. }
                if pipe.decl.is_empty() && pipe.cmds.len() == 1 && pipe.cmds[0].args.len() == 1 =>
            {
                match &pipe.cmds[0].args[0] {
                    Arg::Field(f) if f.len() == 1 && f[0] == "src" => out.push_str("{{src}}"),
                    Arg::Field(f) if f.len() == 1 && f[0] == "dest" => {
                        out.push_str(dest);
                        notes.push(
                            "note: check_cmd's {{.dest}} (which confd printed as \"<no value>\") \
                             is written as the target's path"
                                .to_string(),
                        );
                    }
                    _ => return Err(unsupported_check()),
                }
            }
            _ => return Err(unsupported_check()),
        }
    }
    Ok((out, notes))
}

fn unsupported_check() -> String {
    "check_cmd uses template actions other than {{.src}}: write the command with \
     reconfig's {{src}} by hand"
        .into()
}

/// The reconfig entry of a resource named `stem`, its template being plain Tera: confd's
/// `keys` under its `prefix`, all read at one revision and watched; `recursive`, so that an
/// emptied tree renders (confd's functions then find nothing) instead of failing.
pub fn entry(stem: &str, r: &Resource, checkcmd: Option<String>) -> Value {
    let mut e = Map::new();
    e.insert("id".into(), json!(stem));
    let keys: Vec<String> = r.keys.iter().map(|k| join("/", k)).collect();
    e.insert("keys".into(), json!(keys));
    e.insert("recursive".into(), json!(true));
    e.insert("prefix".into(), json!(r.prefix));
    e.insert("pattern".into(), json!("{{ }}"));
    e.insert("source".into(), json!(r.src));
    e.insert("target".into(), json!(r.dest));
    if let Some(mode) = r.mode {
        e.insert("mode".into(), json!(format!("{mode:04o}")));
    }
    if let Some(owner) = &r.owner {
        e.insert("owner".into(), json!(owner));
    }
    if let Some(group) = &r.group {
        e.insert("group".into(), json!(group));
    }
    if let Some(check) = checkcmd {
        e.insert("checkcmd".into(), json!(check));
    }
    if let Some(reload) = &r.reload_cmd {
        e.insert("reloadcmd".into(), json!(reload));
    }
    Value::Object(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_read_as_confd_reads_them() {
        let r = parse(
            "[template]\nSrc = \"a.tmpl\"\ndest = \"/etc/a\"\nkeys = [\"/x\", \"/y\"]\n\
             prefix = \"production\"\nmode = \"644\"\nuid = 33\ncheck_cmd = \"t {{.src}}\"\n",
        )
        .unwrap();
        assert_eq!(r.prefix, "/production");
        assert_eq!(r.mode, Some(644));
        assert_eq!(r.owner.as_deref(), Some("33"));
        assert!(parse("[template]\ndest = \"/x\"")
            .unwrap_err()
            .contains("src"));
    }

    #[test]
    fn join_cleans_like_go() {
        assert_eq!(join("/", "/app"), "/app");
        assert_eq!(join("/production", "/app/"), "/production/app");
        assert_eq!(join("/p", "/"), "/p");
    }

    #[test]
    fn check_cmd_src_becomes_reconfigs() {
        assert_eq!(
            check_cmd("nginx -t -c {{.src}}", "/d").unwrap().0,
            "nginx -t -c {{src}}"
        );
        assert!(check_cmd("x {{if .src}}y{{end}}", "/d").is_err());
    }
}
