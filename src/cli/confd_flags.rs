//! confd's flags given to reconfig: each is answered with one line naming reconfig's
//! equivalent, instead of being misread as a cluster of reconfig's short flags (`-onetime`
//! would be `-o -n -e…`, `-confdir /etc/confd` would be `-c onfdir`).

use std::ffi::OsString;

/// confd's flag → what to use in reconfig.
const CONFD_FLAGS: &[(&str, &str)] = &[
    ("-onetime", "-o, --onetime"),
    ("-noop", "-n, --notreally (a diff of each change, nothing written or run)"),
    ("-confdir", "-c, --cfgdir (conf.d/ and templates/; convert confd's with `reconfig migrate --from confd`)"),
    ("-config-file", "flags or the environment (RECONFIG_…, ETCD_…), e.g. in the unit's EnvironmentFile"),
    ("-backend", "none: reconfig reads etcd v3 only; give its endpoints with --endpoints"),
    ("-node", "--endpoints URL,URL (or ETCD_ENDPOINTS)"),
    ("-prefix", "-p, --prefix, or an entry's \"prefix\""),
    ("-interval", "none: reconfig watches etcd and renders each change as it happens"),
    ("-watch", "none needed: reconfig always watches"),
    ("-log-level", "-d, --debug (or RUST_LOG=debug)"),
    ("-sync-only", "none: leave checkcmd and reloadcmd out of the entries"),
    ("-keep-stage-file", "none: staged files are always removed; -n, --notreally shows what would be written"),
    ("-client-cert", "--ssl_cert"),
    ("-client-key", "--ssl_key"),
    ("-client-ca-keys", "--ssl_cafile"),
    ("-scheme", "endpoints written https://…, or -s, --ssl"),
    ("-srv-record", "--srv"),
    ("-srv-domain", "--srv-domain"),
    ("-basic-auth", "--username and --password (or ETCD_USERNAME, ETCD_PASSWORD)"),
    ("-username", "--username (or ETCD_USERNAME)"),
    ("-password", "--password (or ETCD_PASSWORD, which does not show in ps)"),
    ("-version", "-V, --version"),
];

/// The line answering the first confd flag among the arguments (the program name
/// first), or `None` when there is none. A flag is recognized with `=VALUE` too.
pub fn confd_flag(args: impl IntoIterator<Item = OsString>) -> Option<String> {
    args.into_iter().skip(1).find_map(|arg| {
        let arg = arg.to_str()?.to_string();
        let name = arg.split_once('=').map_or(arg.as_str(), |(name, _)| name);
        CONFD_FLAGS
            .iter()
            .find(|(flag, _)| *flag == name)
            .map(|(flag, ours)| format!("{flag} is confd's flag; in reconfig: {ours}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(args: &[&str]) -> Option<String> {
        confd_flag(args.iter().map(OsString::from))
    }

    #[test]
    fn confd_flags_are_answered_and_reconfigs_are_not() {
        assert_eq!(
            answer(&["reconfig", "-onetime"]).unwrap(),
            "-onetime is confd's flag; in reconfig: -o, --onetime"
        );
        assert!(answer(&["reconfig", "-confdir=/etc/confd"])
            .unwrap()
            .contains("--cfgdir"));
        assert!(answer(&["reconfig", "-noop"])
            .unwrap()
            .contains("--notreally"));
        assert_eq!(
            answer(&["reconfig", "-o", "-n", "-p", "/pre", "--onetime"]),
            None
        );
        assert_eq!(
            answer(&["-onetime"]),
            None,
            "the program name is not a flag"
        );
    }
}
