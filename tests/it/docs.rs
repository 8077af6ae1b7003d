//! The manual against the binaries: every flag that `--help` shows, in every program and
//! sub-command, is documented somewhere in `docs/`; every sub-command is named there; the
//! README stays an introduction (400 lines at most); and the manual speaks of this
//! repository only (no outside specification document is referred to).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common::{binary, etcd_util, reconfig, repo_root, run_command};

/// The longest README.md allowed: the manual proper is in docs/.
const README_MAX_LINES: usize = 400;

/// A program's help, and the command line that printed it.
struct Help {
    command: String,
    text: String,
}

/// `PROGRAM ARGS --help`, which must succeed.
async fn help(program: &str, args: &[&str]) -> Help {
    let cmd = match program {
        "reconfig" => reconfig(),
        "etcd-util" => binary(&etcd_util()),
        other => panic!("no such program {other}"),
    };
    let mut argv = args.to_vec();
    argv.push("--help");
    let run = run_command(cmd, &argv).await;
    let command = format!("{program} {}", argv.join(" "));
    assert_eq!(run.code, 0, "{command} failed:\n{}", run.stderr);
    assert!(!run.stdout.is_empty(), "{command} printed nothing");
    Help {
        command,
        text: run.stdout,
    }
}

/// Every help text the manual must cover.
async fn helps() -> Vec<Help> {
    let mut all = Vec::new();
    for args in [
        &[][..],
        &["dispense"],
        &["render"],
        &["migrate"],
        &["completions"],
        &["man"],
        &["rollout", "status"],
    ] {
        all.push(help("reconfig", args).await);
    }
    all.push(help("etcd-util", &[]).await);
    all
}

/// Whether `token` is a flag as clap prints one: `-x`, or `--name` with letters, digits,
/// `-` and `_` (reconfig.rb's `--ssl_cafile`).
fn is_flag(token: &str) -> bool {
    if let Some(name) = token.strip_prefix("--") {
        name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    } else if let Some(name) = token.strip_prefix('-') {
        name.len() == 1 && name.starts_with(|c: char| c.is_ascii_alphanumeric())
    } else {
        false
    }
}

/// The flags a help text defines: those that start an option line (`  -c, --cfgdir <DIR>`,
/// `      --log-format <FORMAT>`), and the visible aliases (`[alias: --cfg-dir]`,
/// `[aliases: --a, --b]`) wherever the text wraps them.
fn flags(help: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in help.lines() {
        let rest = line.trim_start();
        // Option lines are indented by 2 (with a short flag) or 6 columns; descriptions
        // and their continuation lines by more.
        if line.len() - rest.len() <= 6 {
            for token in rest.split_whitespace() {
                let token = token.trim_end_matches(',');
                if !is_flag(token) {
                    break;
                }
                found.insert(token.to_string());
            }
        }
        for marker in ["[alias: ", "[aliases: "] {
            let mut text = line;
            while let Some(start) = text.find(marker) {
                let after = &text[start + marker.len()..];
                let end = after.find(']').unwrap_or(after.len());
                for alias in after[..end].split(',').map(str::trim) {
                    assert!(is_flag(alias), "alias {alias:?} in {line:?}");
                    found.insert(alias.to_string());
                }
                text = &after[end..];
            }
        }
    }
    found
}

/// The sub-commands a help text lists under `Commands:`.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim_end() != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| line.len() - line.trim_start().len() == 2)
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Whether `text` holds `word` with no letter, digit, `-` or `_` right before or after it:
/// `--ssl` is not documented by `--ssl_cafile`, nor `-s` by `--ssl`.
fn mentions(text: &str, word: &str) -> bool {
    let part_of_name = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(part_of_name) && !after.is_some_and(part_of_name)
    })
}

/// Every Markdown page of the manual, with its text.
fn manual_pages() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, pages: &mut Vec<(PathBuf, String)>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, pages);
            } else if path.extension().is_some_and(|x| x == "md") {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                pages.push((path, text));
            }
        }
    }
    let mut pages = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("docs"),
        &mut pages,
    );
    assert!(!pages.is_empty(), "no page under docs/");
    pages
}

#[tokio::test]
async fn every_flag_of_every_help_is_documented() {
    let docs: String = manual_pages()
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join("\n");
    let mut missing = Vec::new();
    let mut checked = 0;
    for help in helps().await {
        let flags = flags(&help.text);
        assert!(
            flags.contains("--help"),
            "no flag found in `{}`:\n{}",
            help.command,
            help.text
        );
        for flag in &flags {
            checked += 1;
            let documented = if flag.starts_with("--") {
                mentions(&docs, flag)
            } else {
                // A short flag is documented as code: `-c`, or `-c` followed by its value.
                [
                    format!("`{flag}`"),
                    format!("`{flag} "),
                    format!("`{flag},"),
                ]
                .iter()
                .any(|form| docs.contains(form.as_str()))
            };
            if !documented {
                missing.push(format!("{flag} (from `{}`)", help.command));
            }
        }
        for name in subcommands(&help.text) {
            if !mentions(&docs, &format!("reconfig {name}")) {
                missing.push(format!("reconfig {name} (from `{}`)", help.command));
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} flags found: is the help parsed?"
    );
    assert!(
        missing.is_empty(),
        "documented nowhere in docs/*.md ({} missing):\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

#[test]
fn flags_are_read_from_option_lines_and_aliases() {
    let help = "Options:
  -c, --cfgdir <DIR>     Config directory [default: /etc/reconfig]
                         [alias: --cfg-dir]
      --log-format <FORMAT>
          Log format

          Possible values:
          - text: Timestamp, level, entry, message
          - json: One JSON object a line, see --not-a-flag-here
      --ssl_cafile <FILE>
          CA certificate(s) (PEM); implies --ssl

          [aliases: --ssl-cafile, --cafile]
  -h, --help             Print help
";
    let expected = [
        "--cafile",
        "--cfg-dir",
        "--cfgdir",
        "--help",
        "--log-format",
        "--ssl-cafile",
        "--ssl_cafile",
        "-c",
        "-h",
    ];
    assert_eq!(flags(help), expected.map(String::from).into());
    assert!(mentions("`--ssl`, `--ssl_cafile`", "--ssl"));
    assert!(!mentions("`--ssl_cafile FILE`", "--ssl"));
    assert!(!mentions("`--ssl-cafile`", "--ssl"));
}

#[test]
fn the_readme_is_an_introduction() {
    let path = repo_root().join("README.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines = text.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines; at most {README_MAX_LINES}: move the detail into docs/"
    );
}

#[test]
fn the_manual_names_no_outside_specification() {
    let readme = repo_root().join("README.md");
    let mut pages = manual_pages();
    pages.push((readme.clone(), std::fs::read_to_string(&readme).unwrap()));
    let offending: Vec<String> = pages
        .iter()
        .flat_map(|(path, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, line)| line.contains("SPEC"))
                .map(move |(n, line)| format!("{}:{}: {line}", path.display(), n + 1))
        })
        .collect();
    assert!(
        offending.is_empty(),
        "the manual mentions SPEC:\n  {}",
        offending.join("\n  ")
    );
}
