//! Where SET's value comes from: `-v -` reads it from stdin and `-v @FILE` from a file, so a
//! secret need not be on the command line (where `ps` shows it); either is taken byte for
//! byte, a trailing newline included. Anything else is the value itself.

use std::io::{self, Read};
use std::path::PathBuf;

/// Why the value could not be read (a usage error: the flag names what cannot be read).
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    /// Reading stdin failed.
    #[error("-v -: cannot read the value from stdin: {0}")]
    Stdin(#[source] io::Error),
    /// Reading the file failed.
    #[error("-v @{}: cannot read the value: {source}", .path.display())]
    File {
        /// The file named.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
}

/// The bytes `-v SPEC` stands for.
pub fn read_value(spec: &str) -> Result<Vec<u8>, ValueError> {
    if spec == "-" {
        let mut bytes = Vec::new();
        io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .map_err(ValueError::Stdin)?;
        Ok(bytes)
    } else if let Some(path) = spec.strip_prefix('@') {
        std::fs::read(path).map_err(|source| ValueError::File {
            path: PathBuf::from(path),
            source,
        })
    } else {
        Ok(spec.as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_verbatim_and_other_values_taken_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v");
        std::fs::write(&file, b"\xff\x00line\n").unwrap();
        let spec = format!("@{}", file.display());
        assert_eq!(read_value(&spec).unwrap(), b"\xff\x00line\n");
        assert_eq!(read_value("plain value").unwrap(), b"plain value");
        assert_eq!(read_value("a@b").unwrap(), b"a@b");
        let missing = format!("@{}", dir.path().join("nope").display());
        let error = read_value(&missing).unwrap_err().to_string();
        assert!(error.starts_with(&format!("-v {missing}: ")), "{error}");
    }
}
