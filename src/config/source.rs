//! Where an entry's template may be: a regular file inside `templates/`. `source` is a
//! path relative to that directory and must still lead inside it once every link on the
//! way is followed, so an entry cannot render `/proc/self/environ`, `../../x` or a file a
//! link leads to elsewhere (which would get round the templates' guard on the etcd
//! password). A link inside `templates/` to another template there is fine.

use std::io;
use std::path::{Path, PathBuf};

/// The templates directory, with where it really is (every link resolved).
#[derive(Debug)]
pub struct TemplateDir {
    path: PathBuf,
    real: PathBuf,
}

/// Why an entry's `source` names no template.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// An absolute path, which would not be under `templates/`.
    #[error("source {0:?} is an absolute path: name a file inside templates/, relative to it")]
    Absolute(String),
    /// Nothing there (a dangling link included).
    #[error("template {} not found", .0.display())]
    NotFound(PathBuf),
    /// It leads out of `templates/`, by `..` or by a link.
    #[error(
        "source {given:?} leads outside templates/ (to {}): a template must be a file inside it",
        .to.display()
    )]
    Outside {
        /// The entry's `source`.
        given: String,
        /// Where it leads.
        to: PathBuf,
    },
    /// A directory, FIFO, device or socket.
    #[error("template {} is not a regular file", .0.display())]
    NotAFile(PathBuf),
    /// The path cannot be resolved.
    #[error("template {}: {source}", .path.display())]
    Resolve {
        /// The template's path.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
}

impl TemplateDir {
    /// The templates directory at `path`, resolved once for every entry.
    pub fn open(path: &Path) -> io::Result<TemplateDir> {
        Ok(TemplateDir {
            path: path.to_path_buf(),
            real: path.canonicalize()?,
        })
    }

    /// The template file an entry's `source` names (as `templates/SOURCE`, for messages
    /// and the watch), once it is known to be a regular file inside the directory.
    pub fn template(&self, source: &str) -> Result<PathBuf, SourceError> {
        if Path::new(source).is_absolute() {
            return Err(SourceError::Absolute(source.to_string()));
        }
        let path = self.path.join(source);
        let real = match path.canonicalize() {
            Ok(real) => real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SourceError::NotFound(path))
            }
            Err(source) => return Err(SourceError::Resolve { path, source }),
        };
        if !real.starts_with(&self.real) {
            return Err(SourceError::Outside {
                given: source.to_string(),
                to: real,
            });
        }
        match std::fs::metadata(&real) {
            Ok(meta) if meta.is_file() => Ok(path),
            Ok(_) => Err(SourceError::NotAFile(path)),
            Err(source) => Err(SourceError::Resolve { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn only_regular_files_inside_the_directory_are_templates() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("templates");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("t"), "x").unwrap();
        std::fs::write(dir.join("sub/u"), "x").unwrap();
        std::fs::write(root.path().join("outside"), "x").unwrap();
        symlink("t", dir.join("alias")).unwrap();
        symlink("../t", dir.join("sub/up")).unwrap();
        symlink("../outside", dir.join("out")).unwrap();
        symlink("/etc", dir.join("etc")).unwrap();
        symlink("nowhere", dir.join("dangling")).unwrap();
        let templates = TemplateDir::open(&dir).unwrap();
        for fine in ["t", "sub/u", "alias", "sub/up", "sub/../t", "./t"] {
            assert_eq!(templates.template(fine).unwrap(), dir.join(fine), "{fine}");
        }
        let refused = |source: &str| templates.template(source).unwrap_err();
        assert!(matches!(
            refused("/proc/self/environ"),
            SourceError::Absolute(_)
        ));
        assert!(matches!(refused("/etc/passwd"), SourceError::Absolute(_)));
        for outside in ["../outside", "sub/../../outside", "out", "etc/passwd"] {
            let error = refused(outside);
            assert!(matches!(error, SourceError::Outside { .. }), "{outside}");
            assert!(
                error.to_string().contains("leads outside templates/"),
                "{error}"
            );
        }
        assert!(matches!(refused("dangling"), SourceError::NotFound(_)));
        assert!(matches!(refused("nosuch"), SourceError::NotFound(_)));
        assert!(matches!(refused("sub"), SourceError::NotAFile(_)));
        assert!(matches!(refused(""), SourceError::NotAFile(_)));
    }
}
