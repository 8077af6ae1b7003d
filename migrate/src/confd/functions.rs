//! The functions confd gives templates (its `template_funcs.go` and memkv's store) and
//! what the conversion does with each: reconfig implements most with confd's meaning
//! (`go_NAME`); the ones whose result is the time, the network or the file system at the
//! moment of a render have no faithful equivalent, since reconfig renders from etcd data.

/// What the conversion does with a function.
pub enum Support {
    /// Implemented by reconfig with confd's meaning.
    Converted,
    /// Implemented, with something a person should know (the report's note).
    Noted(&'static str),
    /// Not converted: the reason and what to write instead.
    Refused(&'static str),
}

/// Every function confd defines, besides Go's builtins.
const CONFD: &[&str] = &[
    "base",
    "split",
    "json",
    "jsonArray",
    "dir",
    "map",
    "getenv",
    "join",
    "datetime",
    "toUpper",
    "toLower",
    "contains",
    "replace",
    "trimSuffix",
    "lookupIP",
    "lookupIPV4",
    "lookupIPV6",
    "lookupSRV",
    "fileExists",
    "base64Encode",
    "base64Decode",
    "parseBool",
    "reverse",
    "sortByLength",
    "sortKVByLength",
    "add",
    "sub",
    "div",
    "mod",
    "mul",
    "seq",
    "atoi",
    "exists",
    "ls",
    "lsdir",
    "get",
    "gets",
    "getv",
    "getvs",
];

/// Whether confd defines `name` (Go refuses to parse a call of anything else).
pub fn defined(name: &str) -> bool {
    CONFD.contains(&name)
}

/// The confd functions a converted template may call: reconfig defines each (as
/// `go_NAME`), which its tests hold it to.
pub fn converted() -> impl Iterator<Item = &'static str> {
    CONFD
        .iter()
        .copied()
        .filter(|name| !matches!(support(name), Support::Refused(_)))
}

/// What the conversion does with the function `name`.
pub fn support(name: &str) -> Support {
    match name {
        "datetime" => Support::Refused(
            "datetime prints the time of each render, so every render would rewrite the \
             file and reload the service: put the time in etcd, or drop it",
        ),
        "lookupIP" | "lookupIPV4" | "lookupIPV6" | "lookupSRV" => Support::Refused(
            "DNS lookups at render time make the output depend on the resolver, not on \
             etcd: register the addresses in etcd, or let the service resolve the name",
        ),
        "fileExists" => Support::Refused(
            "fileExists makes the output depend on the local file system, which reconfig \
             does not watch: keep the condition in etcd",
        ),
        "getenv" => Support::Noted(
            "note: getenv reads reconfig's environment (set it in the unit, e.g. in its \
             EnvironmentFile), not confd's",
        ),
        _ => Support::Converted,
    }
}
