//! Manual pages and shell completion scripts, generated from a program's command-line
//! definitions so they always match `--help`: a roff page for the program and one for each
//! subcommand (`reconfig-render(1)`), each with the sections clap cannot know — how the
//! command exits and which environment variables it reads — and a SEE ALSO that names only
//! pages generated with it. `reconfig` ([`reconfig`]) and `etcd-util` describe their pages.

pub(super) mod reconfig;

use std::io;
use std::path::{Path, PathBuf};

use clap_complete::Shell;
use clap_mangen::roff::{bold, roman, Inline, Roff};
use clap_mangen::Man;
use fsx::Perms;

use crate::exit::{Exit, Fatal};

/// An environment variable and what it does, for a page's ENVIRONMENT section.
pub type EnvVar = (&'static str, &'static str);

/// What a page says beyond the flags.
#[derive(Debug, Clone, Copy)]
pub struct PageNotes {
    /// EXIT STATUS: each status, and when the command ends with it.
    pub exit_status: &'static [(&'static str, &'static str)],
    /// ENVIRONMENT, in groups: the variables the command reads (or sets for what it runs).
    /// No group: the section says the command reads none.
    pub environment: &'static [&'static [EnvVar]],
}

/// Why a page could not be given.
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    /// No page has this name (a usage error).
    #[error("no manual page for {asked:?}; there are pages for: {}", .known.join(", "))]
    NoSuchPage {
        /// The subcommand asked for.
        asked: String,
        /// The subcommands that have pages.
        known: Vec<String>,
    },
    /// A page could not be written.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The page, or the directory it goes to.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
}

impl Fatal for ManualError {
    fn exit(&self) -> Exit {
        match self {
            ManualError::NoSuchPage { .. } => Exit::Usage,
            ManualError::Write { .. } => Exit::Failed,
        }
    }
}

/// How the roff crate defines `\*(Aq`, the apostrophe, at the start of everything it
/// writes.
const APOSTROPHE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// Pages are for everyone to read.
const PAGE_PERMS: Perms = Perms {
    mode: 0o644,
    uid: None,
    gid: None,
};

/// One of clap_mangen's sections, written into a page.
type Section = fn(&Man, &mut dyn io::Write) -> io::Result<()>;

/// A program's manual: its pages, named `PROGRAM` and `PROGRAM-SUBCOMMAND`, in section 1.
pub struct Manual {
    program: clap::Command,
    related: &'static [&'static str],
    notes: fn(Option<&str>) -> PageNotes,
}

impl Manual {
    /// The manual of `program`. `notes` gives the extra sections of the program's page
    /// (`None`) and of each subcommand's (its name); `related` names the pages of the
    /// companion programs, which every page lists under SEE ALSO.
    pub fn new(
        program: clap::Command,
        related: &'static [&'static str],
        notes: fn(Option<&str>) -> PageNotes,
    ) -> Self {
        // As clap_mangen does for whole trees: `help` is a flag on every page, not a page.
        let mut program = program.disable_help_subcommand(true);
        program.build();
        Manual {
            program,
            related,
            notes,
        }
    }

    /// The subcommands that have a page of their own, nested ones included, each with its
    /// path (`"rollout status"`).
    fn subcommands(&self) -> Vec<(String, &clap::Command)> {
        fn walk<'c>(
            prefix: &str,
            command: &'c clap::Command,
            out: &mut Vec<(String, &'c clap::Command)>,
        ) {
            for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
                let path = format!("{prefix}{}", sub.get_name());
                out.push((path.clone(), sub));
                walk(&format!("{path} "), sub, out);
            }
        }
        let mut out = Vec::new();
        walk("", &self.program, &mut out);
        out
    }

    fn name(&self) -> &str {
        self.program.get_name()
    }

    /// `reconfig-rollout-status` for `rollout status`.
    fn page_name(&self, path: &str) -> String {
        format!("{}-{}", self.name(), path.replace(' ', "-"))
    }

    /// Every page: its name, and the subcommand it is about (`None`: the program's own).
    fn pages(&self) -> Vec<(String, Option<String>)> {
        std::iter::once((self.name().to_string(), None))
            .chain(
                self.subcommands()
                    .into_iter()
                    .map(|(path, _)| (self.page_name(&path), Some(path))),
            )
            .collect()
    }

    /// The page of the program (`None`) or of one of its subcommands (`render`, `rollout
    /// status` or `rollout-status`), in roff.
    pub fn page(&self, subcommand: Option<&str>) -> Result<Vec<u8>, ManualError> {
        let subcommands = self.subcommands();
        let Some(asked) = subcommand else {
            let see_also = subcommands
                .iter()
                .filter(|(path, _)| !path.contains(' '))
                .map(|(path, _)| self.page_name(path));
            return Ok(self.render(&self.program, (self.notes)(None), see_also.collect()));
        };
        let wanted = asked.replace('-', " ");
        let Some((path, command)) = subcommands.iter().find(|(path, _)| *path == wanted) else {
            return Err(ManualError::NoSuchPage {
                asked: asked.to_string(),
                known: subcommands
                    .iter()
                    .map(|(path, _)| path.replace(' ', "-"))
                    .collect(),
            });
        };
        // The pages of the commands above it, then those of the ones below.
        let mut see_also = vec![self.name().to_string()];
        let mut above = String::new();
        for word in path.split(' ').take(path.split(' ').count() - 1) {
            above = format!("{above}{word}");
            see_also.push(self.page_name(&above));
            above.push(' ');
        }
        see_also.extend(
            subcommands
                .iter()
                .filter(|(sub, _)| {
                    sub.strip_prefix(path.as_str())
                        .is_some_and(|rest| rest.starts_with(' ') && !rest[1..].contains(' '))
                })
                .map(|(sub, _)| self.page_name(sub)),
        );
        Ok(self.render(command, (self.notes)(Some(path)), see_also))
    }

    fn render(&self, command: &clap::Command, notes: PageNotes, see_also: Vec<String>) -> Vec<u8> {
        let version = self.program.get_version().unwrap_or_default();
        let man = Man::new(command.clone()).source(format!("{} {version}", self.name()));
        let mut page = Vec::new();
        let sections: [Section; 5] = [
            Man::render_title,
            Man::render_name_section,
            Man::render_synopsis_section,
            Man::render_description_section,
            Man::render_options_section,
        ];
        for section in sections {
            section(&man, &mut page).expect("writing into memory cannot fail");
        }
        if command.has_subcommands() {
            man.render_subcommands_section(&mut page)
                .expect("writing into memory cannot fail");
        }
        let see_also = see_also
            .into_iter()
            .chain(self.related.iter().map(|page| page.to_string()));
        let roff = extra_sections(command, notes, see_also);
        roff.to_writer(&mut page)
            .expect("writing into memory cannot fail");
        // Each part above starts with roff's definition of the apostrophe string: once is
        // enough.
        let page = String::from_utf8(page).expect("roff output is UTF-8");
        format!("{APOSTROPHE}{}", page.replace(APOSTROPHE, "")).into_bytes()
    }

    /// Writes every page into `dir` as `NAME.1`, each replacing an earlier one at once (a
    /// new file renamed over it, never one opened through a link); returns the paths.
    pub fn write_all(&self, dir: &Path) -> Result<Vec<PathBuf>, ManualError> {
        let mut written = Vec::new();
        for (name, subcommand) in self.pages() {
            let path = dir.join(format!("{name}.1"));
            let page = self.page(subcommand.as_deref())?;
            let failed = |source| ManualError::Write {
                path: path.clone(),
                source,
            };
            let file = format!("{name}.1");
            let prefix = format!(".{file}.");
            fsx::replace(dir, file.as_ref(), prefix.as_ref(), 10, &page, &PAGE_PERMS)
                .map_err(|e| failed(e.into()))?;
            written.push(path);
        }
        fsx::sync_dir(dir).map_err(|source| ManualError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(written)
    }
}

/// The sections clap does not know: EXIT STATUS, ENVIRONMENT and SEE ALSO.
fn extra_sections(
    command: &clap::Command,
    notes: PageNotes,
    see_also: impl Iterator<Item = String>,
) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    for (status, meaning) in notes.exit_status {
        roff.control("TP", [])
            .text([bold(*status)])
            .text([roman(*meaning)]);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    if notes.environment.is_empty() {
        let full = command.get_bin_name().unwrap_or(command.get_name());
        roff.text([roman(format!("{full} reads no environment variable."))]);
    }
    for (variable, meaning) in notes.environment.iter().copied().flatten() {
        roff.control("TP", [])
            .text([bold(*variable)])
            .text([roman(*meaning)]);
    }
    // Page names are not hyphenated where the line breaks.
    roff.control("SH", ["SEE ALSO"]).control("nh", []);
    let mut references: Vec<Inline> = Vec::new();
    for (n, page) in see_also.enumerate() {
        if n > 0 {
            references.push(roman(", "));
        }
        references.extend([bold(page), roman("(1)")]);
    }
    roff.text(references);
    roff
}

/// Writes a generated page or script to stdout for `program`: a closed pipe or a full disk
/// is one line on stderr and exit 1, not a panic.
pub fn print_generated(program: &str, text: &[u8]) -> Exit {
    use std::io::Write;
    match io::stdout().lock().write_all(text) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("{program}: cannot write to stdout: {e}");
            Exit::Failed
        }
    }
}

/// The completion script of `program` for `shell`.
pub fn completion_script(mut program: clap::Command, shell: Shell) -> Vec<u8> {
    let name = program.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut program, name, &mut script);
    script
}

#[cfg(test)]
mod tests {
    use super::reconfig::manual;

    #[test]
    fn every_page_has_the_sections_clap_cannot_write() {
        let manual = manual();
        let pages = manual.pages();
        assert_eq!(pages[0], ("reconfig".to_string(), None));
        assert!(pages
            .iter()
            .any(|(name, _)| name == "reconfig-rollout-status"));
        assert!(pages.iter().any(|(name, _)| name == "reconfig-render"));
        assert!(!pages.iter().any(|(name, _)| name == "reconfig-help"));
        for (name, subcommand) in pages {
            let page = String::from_utf8(manual.page(subcommand.as_deref()).unwrap()).unwrap();
            assert!(page.contains(&format!(".TH {name} 1 ")), "{page}");
            for section in [".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH \"SEE ALSO\""] {
                assert!(page.contains(section), "{name}: no {section}:\n{page}");
            }
            assert_eq!(page.matches(".ds Aq").count(), 2, "{page}");
        }
        assert!(matches!(
            manual.page(Some("help")),
            Err(super::ManualError::NoSuchPage { .. })
        ));
    }
}
