//! The mode, owner and group a target gets — the entry's, else the current file's as far
//! as the running user may give them — and what differs from them in a file whose content
//! is already right (drift), fixed in place.

use std::fmt;
use std::fs::Permissions;
use std::os::unix::fs::{fchown, PermissionsExt};

use fsx::{group_id, user_id, Perms};
use nix::unistd::{getegid, geteuid, Group, User};

use super::error::ApplyError;
use super::target::Current;
use crate::config::Entry;

/// Mode of a new target when the entry names none.
const DEFAULT_MODE: u32 = 0o644;

/// The owner and group ids the entry asks for.
pub(super) struct Asked {
    uid: Option<u32>,
    gid: Option<u32>,
}

/// A permission of the target other than the entry asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Drift {
    Mode { from: u32, to: u32 },
    Owner { from: u32, to: u32 },
    Group { from: u32, to: u32 },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Drift::Mode { from, to } => write!(f, "mode {from:04o} → {to:04o}"),
            Drift::Owner { from, to } => write!(f, "owner {} → {}", user_name(from), user_name(to)),
            Drift::Group { from, to } => {
                write!(f, "group {} → {}", group_name(from), group_name(to))
            }
        }
    }
}

/// A user's name, or its id when it has none.
fn user_name(uid: u32) -> String {
    match User::from_uid(uid.into()) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}

/// A group's name, or its id when it has none.
fn group_name(gid: u32) -> String {
    match Group::from_gid(gid.into()) {
        Ok(Some(group)) => group.name,
        _ => gid.to_string(),
    }
}

/// The ids of the entry's `owner` and `group`.
pub(super) fn asked_ids(entry: &Entry) -> Result<Asked, ApplyError> {
    let unknown = |source| ApplyError::Id {
        target: entry.target.clone(),
        source,
    };
    let uid = entry.owner.as_deref().map(user_id).transpose();
    let gid = entry.group.as_deref().map(group_id).transpose();
    Ok(Asked {
        uid: uid.map_err(unknown)?,
        gid: gid.map_err(unknown)?,
    })
}

/// The mode, owner and group of the new file: the entry's, else [`kept_ids`] and the
/// current file's mode, else 0644.
pub(super) fn wanted_perms(entry: &Entry, asked: &Asked, current: Option<&Current>) -> Perms {
    let mode = entry
        .mode
        .or(current.map(|c| c.mode))
        .unwrap_or(DEFAULT_MODE);
    let (uid, gid) = kept_ids(current);
    Perms {
        mode,
        uid: asked.uid.or(uid),
        gid: asked.gid.or(gid),
    }
}

/// The owner and group a new file gets unasked: the current file's as far as
/// [`fsx::kept_ids`] keeps them; without one, root's own as root, else the defaults.
pub(super) fn kept_ids(current: Option<&Current>) -> (Option<u32>, Option<u32>) {
    match current {
        Some(current) => fsx::kept_ids(current.uid, current.gid),
        None if geteuid().is_root() => (Some(geteuid().as_raw()), Some(getegid().as_raw())),
        None => (None, None),
    }
}

/// The permissions of `current` that differ from what the entry asks for.
pub(super) fn drift(entry: &Entry, asked: &Asked, current: &Current) -> Vec<Drift> {
    let mode = entry
        .mode
        .filter(|&to| to != current.mode)
        .map(|to| Drift::Mode {
            from: current.mode,
            to,
        });
    let owner = asked
        .uid
        .filter(|&to| to != current.uid)
        .map(|to| Drift::Owner {
            from: current.uid,
            to,
        });
    let group = asked
        .gid
        .filter(|&to| to != current.gid)
        .map(|to| Drift::Group {
            from: current.gid,
            to,
        });
    [mode, owner, group].into_iter().flatten().collect()
}

/// Gives the current file the owner, group and mode the entry asks for.
pub(super) fn fix_in_place(
    entry: &Entry,
    current: &Current,
    drift: &[Drift],
) -> Result<(), ApplyError> {
    let mut perms = Perms {
        mode: entry.mode.unwrap_or(current.mode),
        uid: None,
        gid: None,
    };
    for change in drift {
        match *change {
            Drift::Owner { to, .. } => perms.uid = Some(to),
            Drift::Group { to, .. } => perms.gid = Some(to),
            Drift::Mode { .. } => {}
        }
    }
    if perms.uid.is_some() || perms.gid.is_some() {
        fchown(&current.file, perms.uid, perms.gid).map_err(|source| ApplyError::Chown {
            target: entry.target.clone(),
            ids: describe_ids(entry, &perms),
            source,
        })?;
    }
    // Also after a chown alone, which may have cleared set-id bits.
    current
        .file
        .set_permissions(Permissions::from_mode(perms.mode))
        .and_then(|()| current.file.sync_all())
        .map_err(|source| ApplyError::Chmod {
            target: entry.target.clone(),
            mode: perms.mode,
            source,
        })
}

/// `owner "www" (uid 33) and group 4`: the ids in `perms`, named as the entry names them.
pub(super) fn describe_ids(entry: &Entry, perms: &Perms) -> String {
    let owner = perms.uid.map(|uid| match &entry.owner {
        Some(name) => format!("owner {name:?} (uid {uid})"),
        None => format!("owner {uid}"),
    });
    let group = perms.gid.map(|gid| match &entry.group {
        Some(name) => format!("group {name:?} (gid {gid})"),
        None => format!("group {gid}"),
    });
    [owner, group]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" and ")
}
