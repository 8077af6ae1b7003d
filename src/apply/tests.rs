//! Tests of [`apply`] against real files in temporary directories and real `sh` commands.

use std::fs::{self, Permissions};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;

use nix::unistd::{getegid, geteuid, Group, User};
use tempfile::TempDir;

use super::command::CommandError;
use super::target::may_follow;
use super::*;

/// A temporary directory with a target path and a marker path in it.
struct Fixture {
    dir: TempDir,
    target: PathBuf,
    marker: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("app.conf");
        let marker = dir.path().join("marker");
        Fixture {
            dir,
            target,
            marker,
        }
    }

    /// Creates the target with `content` and `mode`.
    fn existing(&self, content: &str, mode: u32) {
        fs::write(&self.target, content).unwrap();
        fs::set_permissions(&self.target, Permissions::from_mode(mode)).unwrap();
    }

    /// A command that leaves the marker file, proving it ran.
    fn touch_marker(&self) -> String {
        format!("touch {}", shell_quote(&self.marker))
    }

    fn content(&self) -> String {
        fs::read_to_string(&self.target).unwrap()
    }

    fn mode(&self) -> u32 {
        fs::metadata(&self.target).unwrap().mode() & 0o7777
    }

    /// Every name in the directory, sorted; staged leftovers would show up here.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// What `--onetime` does: apply, then reload when the target changed.
async fn apply_for_real(entry: &Entry, new: &str) -> Result<Outcome, ApplyError> {
    let outcome = apply(entry, new.into(), &ApplyOptions::default(), None).await?;
    if outcome == Outcome::Changed {
        reload(entry).await?;
    }
    Ok(outcome)
}

#[tokio::test]
async fn apply_swaps_and_checks_but_leaves_the_reload_to_the_caller() {
    let fx = Fixture::new();
    let mut e = Entry::for_test(&fx.target);
    e.reloadcmd = Some(fx.touch_marker());
    let outcome = apply(&e, b"new\n".to_vec(), &ApplyOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Changed);
    assert_eq!(fx.content(), "new\n");
    assert!(!fx.marker.exists(), "apply reloaded");
    reload(&e).await.unwrap();
    assert!(fx.marker.exists(), "reload did not run");
}

#[tokio::test]
async fn syncs_in_place_and_shared_write_check_and_roll_back_alike() {
    for syncs in [Syncs::InPlace, Syncs::Shared] {
        let opts = ApplyOptions {
            syncs,
            ..ApplyOptions::default()
        };
        let fx = Fixture::new();
        fx.existing("old\n", 0o640);
        let mut e = Entry::for_test(&fx.target);
        e.checkcmd = Some("grep -q new {{src}}".into());
        let outcome = apply(&e, b"new\n".to_vec(), &opts, None).await.unwrap();
        assert_eq!(outcome, Outcome::Changed, "{syncs:?}");
        assert_eq!(
            (fx.content(), fx.mode()),
            ("new\n".into(), 0o640),
            "{syncs:?}"
        );

        e.checkcmd = Some("exit 1".into());
        let err = apply(&e, b"newer\n".to_vec(), &opts, None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ApplyError::CheckAfterSwap {
                    restored: Restored::Previous,
                    ..
                }
            ),
            "{syncs:?}: {err:?}"
        );
        assert_eq!(fx.content(), "new\n", "{syncs:?}");
        assert_eq!(fx.names(), ["app.conf"], "{syncs:?}");
    }
}

/// Asserts the error's message is one line holding every part.
fn assert_message(err: &ApplyError, parts: &[&str]) {
    let message = err.to_string();
    assert!(!message.contains('\n'), "not one line: {message}");
    for part in parts {
        assert!(message.contains(part), "{part:?} missing in {message}");
    }
}

#[tokio::test]
async fn unchanged_content_writes_nothing_and_runs_nothing() {
    let fx = Fixture::new();
    fx.existing("same\n", 0o640);
    let inode = fs::metadata(&fx.target).unwrap().ino();
    let mut e = Entry::for_test(&fx.target);
    e.checkcmd = Some(format!("{}; : {{{{src}}}}", fx.touch_marker()));
    e.reloadcmd = Some(fx.touch_marker());

    assert_eq!(
        apply_for_real(&e, "same\n").await.unwrap(),
        Outcome::Unchanged
    );
    assert!(!fx.marker.exists(), "a command ran");
    assert_eq!(
        fs::metadata(&fx.target).unwrap().ino(),
        inode,
        "the file was replaced"
    );
    assert_eq!(fx.names(), ["app.conf"]);
}

#[tokio::test]
async fn preview_returns_the_diff_and_touches_nothing() {
    let fx = Fixture::new();
    fx.existing("a\nb\n", 0o640);
    let mut e = Entry::for_test(&fx.target);
    e.checkcmd = Some(fx.touch_marker());
    e.reloadcmd = Some(fx.touch_marker());
    let opts = ApplyOptions {
        notreally: true,
        ..ApplyOptions::default()
    };

    let outcome = apply(&e, b"a\nc\n".to_vec(), &opts, None).await.unwrap();
    let t = fx.target.display();
    let diff = format!("--- {t}\n+++ {t} (new)\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n");
    assert_eq!(outcome, Outcome::Preview { diff });
    assert_eq!(fx.content(), "a\nb\n");
    assert_eq!(fx.mode(), 0o640);
    assert_eq!(fx.names(), ["app.conf"]);
}

#[tokio::test]
async fn preview_of_a_missing_target_creates_nothing() {
    let fx = Fixture::new();
    let opts = ApplyOptions {
        notreally: true,
        color: true,
        ..ApplyOptions::default()
    };
    let outcome = apply(&Entry::for_test(&fx.target), b"x\n".to_vec(), &opts, None)
        .await
        .unwrap();
    let Outcome::Preview { diff } = outcome else {
        panic!("expected a preview, got {outcome:?}");
    };
    assert!(diff.contains("\x1b[32m+x\x1b[0m"), "{diff:?}");
    assert!(fx.names().is_empty());
}

#[tokio::test]
async fn new_file_has_the_requested_mode_from_the_start() {
    let fx = Fixture::new();
    let mut e = Entry::for_test(&fx.target);
    e.mode = Some(0o600);
    e.checkcmd = Some(format!(
        "stat -c %a {{{{src}}}} > {}",
        shell_quote(&fx.marker)
    ));

    assert_eq!(
        apply_for_real(&e, "secret\n").await.unwrap(),
        Outcome::Changed
    );
    assert_eq!(fs::read_to_string(&fx.marker).unwrap(), "600\n");
    assert_eq!(fx.content(), "secret\n");
    assert_eq!(fx.mode(), 0o600);
    assert_eq!(fx.names(), ["app.conf", "marker"]);
}

#[tokio::test]
async fn missing_target_counts_as_different_and_gets_the_defaults() {
    let fx = Fixture::new();
    assert_eq!(
        apply_for_real(&Entry::for_test(&fx.target), "")
            .await
            .unwrap(),
        Outcome::Changed
    );
    let meta = fs::metadata(&fx.target).unwrap();
    assert_eq!(meta.len(), 0);
    assert_eq!(meta.mode() & 0o7777, 0o644);
    assert_eq!(
        (meta.uid(), meta.gid()),
        (geteuid().as_raw(), getegid().as_raw())
    );
}

#[tokio::test]
async fn existing_mode_is_kept_by_default() {
    let fx = Fixture::new();
    fx.existing("old\n", 0o640);
    assert_eq!(
        apply_for_real(&Entry::for_test(&fx.target), "new\n")
            .await
            .unwrap(),
        Outcome::Changed
    );
    assert_eq!(fx.content(), "new\n");
    assert_eq!(fx.mode(), 0o640);
}

#[tokio::test]
async fn failing_staged_check_leaves_the_target_alone() {
    let fx = Fixture::new();
    fx.existing("old\n", 0o644);
    let seen = fx.dir.path().join("seen");
    let mut e = Entry::for_test(&fx.target);
    e.checkcmd = Some(format!(
        "cat {{{{src}}}} > {}; echo 'bad config' >&2; exit 1",
        shell_quote(&seen)
    ));
    e.reloadcmd = Some(fx.touch_marker());

    let err = apply_for_real(&e, "new\n").await.unwrap_err();
    assert!(matches!(err, ApplyError::Check { .. }), "{err:?}");
    assert_message(
        &err,
        &[
            "check command",
            "(exit 1): bad config",
            "target left unchanged",
        ],
    );
    assert_eq!(fs::read_to_string(&seen).unwrap(), "new\n");
    assert_eq!(fx.content(), "old\n");
    assert!(!fx.marker.exists(), "reload ran");
    assert_eq!(fx.names(), ["app.conf", "seen"]);
}

#[tokio::test]
async fn staged_check_timeout_leaves_the_target_alone() {
    let fx = Fixture::new();
    fx.existing("old\n", 0o644);
    let mut e = Entry::for_test(&fx.target);
    e.checkcmd = Some("sleep 1000; cat {{src}}".into());
    e.check_timeout = Duration::from_millis(200);

    let err = apply_for_real(&e, "new\n").await.unwrap_err();
    assert!(
        matches!(
            &err,
            ApplyError::Check {
                source: CommandError::TimedOut { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_message(&err, &["timed out after 200ms", "target left unchanged"]);
    assert_eq!(fx.content(), "old\n");
    assert_eq!(fx.names(), ["app.conf"]);
}

#[tokio::test]
async fn failing_check_after_the_swap_restores_content_and_mode() {
    let fx = Fixture::new();
    fx.existing("old\n", 0o640);
    let seen = fx.dir.path().join("seen");
    let mut e = Entry::for_test(&fx.target);
    e.mode = Some(0o600);
    e.checkcmd = Some(format!(
        "cat \"$RECONFIG_TARGET\" > {}; exit 1",
        shell_quote(&seen)
    ));
    e.reloadcmd = Some(fx.touch_marker());

    let err = apply_for_real(&e, "new\n").await.unwrap_err();
    assert!(
        matches!(
            err,
            ApplyError::CheckAfterSwap {
                restored: Restored::Previous,
                ..
            }
        ),
        "{err:?}"
    );
    assert_message(&err, &["after the swap; previous content restored"]);
    assert_eq!(
        fs::read_to_string(&seen).unwrap(),
        "new\n",
        "the check saw the new file"
    );
    assert_eq!(fx.content(), "old\n");
    assert_eq!(fx.mode(), 0o640);
    assert!(!fx.marker.exists(), "reload ran");
    assert_eq!(fx.names(), ["app.conf", "seen"]);
}

#[tokio::test]
async fn failing_check_after_the_swap_removes_a_new_file() {
    let fx = Fixture::new();
    let mut e = Entry::for_test(&fx.target);
    e.checkcmd = Some("test ! -e \"$RECONFIG_TARGET\"".into());

    let err = apply_for_real(&e, "new\n").await.unwrap_err();
    assert!(
        matches!(
            err,
            ApplyError::CheckAfterSwap {
                restored: Restored::Removed,
                ..
            }
        ),
        "{err:?}"
    );
    assert_message(&err, &["new file removed"]);
    assert!(fx.names().is_empty());
}

#[tokio::test]
async fn reload_runs_with_the_entry_in_its_environment() {
    let fx = Fixture::new();
    let mut e = Entry::for_test(&fx.target);
    e.checkcmd = Some("grep -q new \"$RECONFIG_TARGET\"".into());
    e.reloadcmd = Some(format!(
        "printf '%s\\n' \"$RECONFIG_ID\" \"$RECONFIG_TARGET\" \"$RECONFIG_KEY\" > {}",
        shell_quote(&fx.marker)
    ));

    assert_eq!(apply_for_real(&e, "new\n").await.unwrap(), Outcome::Changed);
    let expected = format!("test-entry\n{}\n/test/key\n", fx.target.display());
    assert_eq!(fs::read_to_string(&fx.marker).unwrap(), expected);
}

#[tokio::test]
async fn failing_reload_is_an_error_after_the_change() {
    let fx = Fixture::new();
    fx.existing("old\n", 0o644);
    let mut e = Entry::for_test(&fx.target);
    e.reloadcmd = Some("echo 'service not running' >&2; exit 2".into());

    let err = apply_for_real(&e, "new\n").await.unwrap_err();
    assert!(matches!(err, ApplyError::Reload { .. }), "{err:?}");
    assert_message(
        &err,
        &[
            "file changed, but reload command",
            "(exit 2): service not running",
        ],
    );
    assert_eq!(fx.content(), "new\n");
}

#[tokio::test]
async fn missing_target_directory_is_a_clear_error() {
    let fx = Fixture::new();
    let dir = fx.dir.path().join("nope");
    let target = dir.join("app.conf");
    let err = apply_for_real(&Entry::for_test(&target), "x")
        .await
        .unwrap_err();
    let expected = format!(
        "{}: target directory {} does not exist",
        target.display(),
        dir.display()
    );
    assert_eq!(err.to_string(), expected);
    assert!(!dir.exists());
}

#[tokio::test]
async fn file_in_place_of_the_directory_is_a_clear_error() {
    let fx = Fixture::new();
    fx.existing("a file\n", 0o644);
    let target = fx.target.join("app.conf");
    let err = apply_for_real(&Entry::for_test(&target), "x")
        .await
        .unwrap_err();
    assert!(matches!(err, ApplyError::TargetDir { .. }), "{err:?}");
    assert_message(
        &err,
        &[&format!(
            "target directory {} is not a directory",
            fx.target.display()
        )],
    );
}

#[tokio::test]
async fn unwritable_directory_is_a_clear_error() {
    // sysfs refuses new files even to root, which a permission bit would not.
    let dir = Path::new("/sys");
    if !dir.join("kernel").is_dir() {
        eprintln!("skipped: no sysfs at /sys");
        return;
    }
    let target = dir.join("reconfig-test.conf");
    let err = apply_for_real(&Entry::for_test(&target), "x")
        .await
        .unwrap_err();
    assert!(matches!(err, ApplyError::Stage { .. }), "{err:?}");
    assert_message(
        &err,
        &["reconfig-test.conf: cannot write staged file in /sys: "],
    );
}

#[tokio::test]
async fn owner_and_group_are_set_by_name() {
    let fx = Fixture::new();
    let user = User::from_uid(geteuid())
        .unwrap()
        .expect("running user has a name");
    let group = Group::from_gid(getegid())
        .unwrap()
        .expect("running group has a name");
    let mut e = Entry::for_test(&fx.target);
    e.owner = Some(user.name.clone());
    e.group = Some(group.name.clone());

    assert_eq!(apply_for_real(&e, "x\n").await.unwrap(), Outcome::Changed);
    let meta = fs::metadata(&fx.target).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (user.uid.as_raw(), group.gid.as_raw())
    );
}

#[tokio::test]
async fn unknown_owner_or_group_is_an_error_before_anything_is_written() {
    let fx = Fixture::new();
    for kind in ["owner", "group"] {
        let mut e = Entry::for_test(&fx.target);
        let name = "no-such-reconfig-id".to_string();
        if kind == "owner" {
            e.owner = Some(name);
        } else {
            e.group = Some(name);
        }
        let err = apply_for_real(&e, "x\n").await.unwrap_err();
        assert!(matches!(err, ApplyError::Id { .. }), "{err:?}");
        assert_message(&err, &[&format!("unknown {kind} \"no-such-reconfig-id\"")]);
        assert!(fx.names().is_empty());
    }
}

#[tokio::test]
async fn symlinked_target_is_followed_and_stays_a_link() {
    let fx = Fixture::new();
    fx.existing("old\n", 0o640);
    let link = fx.dir.path().join("link.conf");
    std::os::unix::fs::symlink("app.conf", &link).unwrap();

    assert_eq!(
        apply_for_real(&Entry::for_test(&link), "new\n")
            .await
            .unwrap(),
        Outcome::Changed
    );
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fx.content(), "new\n");
    assert_eq!(fx.mode(), 0o640);
    assert_eq!(fx.names(), ["app.conf", "link.conf"]);
}

#[tokio::test]
async fn equal_content_with_another_mode_is_fixed_in_place_without_a_reload() {
    let fx = Fixture::new();
    fx.existing("same\n", 0o644);
    let inode = fs::metadata(&fx.target).unwrap().ino();
    let mut e = Entry::for_test(&fx.target);
    e.mode = Some(0o600);
    e.reloadcmd = Some(fx.touch_marker());
    let preview = ApplyOptions {
        notreally: true,
        ..ApplyOptions::default()
    };
    let t = fx.target.display();

    let outcome = apply(&e, b"same\n".to_vec(), &preview, None).await.unwrap();
    let diff = format!("{t}: mode 0644 → 0600\n");
    assert_eq!(outcome, Outcome::Preview { diff });
    assert_eq!(fx.mode(), 0o644);

    let outcome = apply_for_real(&e, "same\n").await.unwrap();
    let change = "mode 0644 → 0600".to_string();
    assert_eq!(outcome, Outcome::Adjusted { change });
    assert_eq!(fx.mode(), 0o600);
    assert_eq!(fs::metadata(&fx.target).unwrap().ino(), inode);
    assert!(!fx.marker.exists(), "reload ran");
    assert_eq!(
        apply_for_real(&e, "same\n").await.unwrap(),
        Outcome::Unchanged
    );

    // A content change previews the mode change too.
    e.mode = Some(0o640);
    let Outcome::Preview { diff } = apply(&e, b"new\n".to_vec(), &preview, None).await.unwrap()
    else {
        panic!("expected a preview");
    };
    assert!(
        diff.starts_with(&format!("{t}: mode 0600 → 0640\n--- {t}\n")),
        "{diff}"
    );
}

#[tokio::test]
async fn a_fifo_at_the_target_is_refused_without_opening_it() {
    let fx = Fixture::new();
    nix::unistd::mkfifo(&fx.target, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let err = apply_for_real(&Entry::for_test(&fx.target), "x\n")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApplyError::NotAFile { kind: "FIFO", .. }),
        "{err:?}"
    );
    assert_message(
        &err,
        &["app.conf is a FIFO, not a regular file; left alone"],
    );
    assert!(fs::symlink_metadata(&fx.target)
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(fx.names(), ["app.conf"]);
}

#[test]
fn links_are_followed_where_protected_symlinks_would_follow_them() {
    let (root, me, other) = (0, 1000, 2000);
    // (link owner, directory mode, directory owner, follower) → followed?
    let cases = [
        (other, 0o41777, root, me, false),
        (other, 0o41777, root, root, false),
        (me, 0o41777, root, me, true),
        (root, 0o41777, root, me, true),
        (other, 0o41777, other, root, true),
        (other, 0o40777, root, root, true),
        (other, 0o41775, root, root, true),
        (other, 0o40755, root, root, true),
    ];
    for (link, mode, owner, follower, followed) in cases {
        assert_eq!(
            may_follow(link, mode, owner, follower),
            followed,
            "link of {link} in {mode:o} dir of {owner}, followed by {follower}"
        );
    }
}

#[test]
fn splay_delay_stays_within_bounds() {
    assert_eq!(splay_delay(Duration::ZERO), Duration::ZERO);
    let max = Duration::from_millis(50);
    assert!((0..1000).all(|_| splay_delay(max) <= max));
}

/// The `"splay": "10s"` that `reconfig migrate` writes for a reconfig.rb entry without one
/// spreads reloads over the whole range, as reconfig.rb's `rand(10) + 1` spread them over
/// 1-10 s (1,000 draws all missing a tenth of it: a chance of 1e-46).
#[test]
fn splay_delay_spreads_over_the_whole_range() {
    let max = Duration::from_secs(10);
    let draws: Vec<Duration> = (0..1000).map(|_| splay_delay(max)).collect();
    assert!(draws.iter().all(|d| *d <= max));
    assert!(
        draws.iter().any(|d| *d < Duration::from_secs(1)),
        "{draws:?}"
    );
    assert!(
        draws.iter().any(|d| *d > Duration::from_secs(9)),
        "{draws:?}"
    );
}

#[test]
fn shell_quote_survives_quotes_in_paths() {
    assert_eq!(shell_quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
}
