//! Recording: a program run under `strace`, its file-system calls read back in the order
//! they returned. Every string is printed in hex (`-xx`) and every descriptor with the
//! path it stood for (`-y`), so a call names its files without any bookkeeping of
//! descriptors; calls another thread interrupted (`<unfinished ...>`, `<... resumed>`) are
//! joined, and each call remembers how many calls had returned when it was entered (a
//! sync covers only what returned before it began).

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// The calls traced: everything that creates, names, writes, truncates, changes the mode
/// or owner of, or syncs a file, and `lseek` for the offsets of plain writes. Those the
/// model does not handle are traced too, so that one touching a checked file stops the
/// test instead of being missed. `?` keeps strace quiet about names another architecture
/// lacks.
const TRACED: &[&str] = &[
    "open",
    "openat",
    "openat2",
    "creat",
    "write",
    "pwrite64",
    "writev",
    "pwritev",
    "pwritev2",
    "lseek",
    "truncate",
    "ftruncate",
    "fallocate",
    "chmod",
    "fchmod",
    "fchmodat",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "rmdir",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "fsync",
    "fdatasync",
    "sync",
    "syncfs",
    "sync_file_range",
    "copy_file_range",
    "sendfile",
    "splice",
    "chdir",
    "fchdir",
];

/// Longest string strace prints whole; a longer write stops the test rather than be cut.
const STRING_LIMIT: usize = 1 << 20;

/// strace's arguments before the program: follow every process and thread, strings in
/// hex and whole, descriptors with their paths, only [`TRACED`]; the trace goes to `log`.
pub fn strace_args(log: &Path) -> Vec<String> {
    let traced: Vec<String> = TRACED.iter().map(|name| format!("?{name}")).collect();
    vec![
        "-f".to_string(),
        "-qq".to_string(),
        "-xx".to_string(),
        "-y".to_string(),
        "--seccomp-bpf".to_string(),
        format!("-s{STRING_LIMIT}"),
        format!("-etrace={}", traced.join(",")),
        format!("-o{}", log.display()),
        "--".to_string(),
    ]
}

/// The process id of the program strace (`strace_pid`) runs, once it runs.
pub fn tracee(strace_pid: u32) -> Option<u32> {
    let children =
        std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// One system call that returned.
#[derive(Debug, Clone)]
pub struct Call {
    /// The call's name, e.g. `openat`.
    pub name: String,
    /// Its arguments as strace printed them, split at the top-level commas.
    pub args: Vec<String>,
    /// What it returned (`-1` on failure).
    pub ret: i64,
    /// The path of the descriptor it returned (`openat`).
    pub ret_path: Option<PathBuf>,
    /// How many calls had returned when this one was entered.
    pub entered: usize,
}

impl Call {
    /// Argument `i`, which the call must have.
    pub fn arg(&self, i: usize) -> &str {
        self.args.get(i).map_or("", String::as_str)
    }

    /// The path annotating descriptor argument `i` (`3</dir/file>`, `AT_FDCWD</dir>`), if a
    /// path: sockets and pipes have none.
    pub fn fd_path(&self, i: usize) -> Option<PathBuf> {
        annotation(self.arg(i))
    }

    /// The descriptor number of argument `i` (none for `AT_FDCWD`).
    pub fn fd(&self, i: usize) -> Option<i32> {
        self.arg(i).split('<').next()?.parse().ok()
    }

    /// String argument `i`, decoded; panics on a string strace cut short.
    pub fn bytes(&self, i: usize) -> Vec<u8> {
        let arg = self.arg(i);
        assert!(
            !arg.ends_with("..."),
            "{}: a string longer than {STRING_LIMIT} bytes was cut: {arg:.80}",
            self.name
        );
        let quoted = arg
            .strip_prefix('"')
            .and_then(|a| a.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{}: not a string: {arg:.80}", self.name));
        unhex(quoted)
    }

    /// String argument `i` as a path.
    pub fn path(&self, i: usize) -> PathBuf {
        PathBuf::from(OsString::from_vec(self.bytes(i)))
    }

    /// Integer argument `i` (decimal, or octal with a leading 0, as strace prints modes).
    pub fn int(&self, i: usize) -> i64 {
        let arg = self.arg(i);
        let parsed = match arg.strip_prefix('0') {
            Some(octal) if !octal.is_empty() => i64::from_str_radix(octal, 8),
            _ => arg.parse(),
        };
        parsed.unwrap_or_else(|_| panic!("{}: not a number: {arg}", self.name))
    }

    /// Whether flag argument `i` holds `flag` (e.g. `O_CREAT`).
    pub fn has_flag(&self, i: usize, flag: &str) -> bool {
        self.arg(i).split('|').any(|f| f == flag)
    }

    /// The directory a `*at` call's path argument `path` is relative to (argument `dir`),
    /// joined with it; an absolute path stands alone.
    pub fn at_path(&self, dir: usize, path: usize) -> PathBuf {
        let name = self.path(path);
        if name.is_absolute() {
            return name;
        }
        match self.fd_path(dir) {
            Some(base) => base.join(name),
            None => panic!("{}: no directory for {}", self.name, name.display()),
        }
    }
}

/// The calls of the trace at `log` that returned, in the order they returned.
pub fn read_trace(log: &Path) -> Vec<Call> {
    let text = std::fs::read_to_string(log)
        .unwrap_or_else(|e| panic!("cannot read the trace {}: {e}", log.display()));
    parse(&text)
}

/// [`read_trace`] of the text of a trace.
pub fn parse(text: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    // Per thread: the start of an interrupted call, and how many had returned then.
    let mut unfinished: HashMap<u32, (String, usize)> = HashMap::new();
    for line in text.lines() {
        let Some((tid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(tid) = tid.parse::<u32>() else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(start) = rest.strip_suffix(" <unfinished ...>") {
            unfinished.insert(tid, (start.to_string(), calls.len()));
            continue;
        }
        let (whole, entered) = match rest.strip_prefix("<... ") {
            Some(resumed) => {
                let Some((_, tail)) = resumed.split_once(" resumed>") else {
                    continue;
                };
                let Some((start, entered)) = unfinished.remove(&tid) else {
                    continue;
                };
                (format!("{start}{tail}"), entered)
            }
            None => (rest.to_string(), calls.len()),
        };
        if let Some(call) = parse_call(&whole, entered) {
            calls.push(call);
        }
    }
    calls
}

/// `name(args) = ret`, or None for anything else (signals, exits, a call that never
/// returned because its process ended).
fn parse_call(text: &str, entered: usize) -> Option<Call> {
    let open = text.find('(')?;
    let name = &text[..open];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let close = text.rfind(") = ")?;
    let args = split_args(&text[open + 1..close]);
    let ret_text = text[close + 4..].trim();
    let number: String = ret_text
        .chars()
        .take_while(|c| *c == '-' || c.is_ascii_digit())
        .collect();
    let ret = number.parse().ok()?;
    let ret_path = ret_text
        .split_whitespace()
        .next()
        .and_then(annotation)
        .filter(|_| ret >= 0);
    Some(Call {
        name: name.to_string(),
        args,
        ret,
        ret_path,
        entered,
    })
}

/// Arguments split at the commas outside brackets, braces, parentheses, quotes and `<>`.
fn split_args(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut depth = 0i32;
    let mut quoted = false;
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => {
                current.push(c);
                if let Some(next) = chars.next() {
                    current.push(next);
                }
                continue;
            }
            '(' | '[' | '{' | '<' if !quoted => depth += 1,
            ')' | ']' | '}' | '>' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                args.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        args.push(current.trim().to_string());
    }
    args
}

/// The path in `3<\x2f...>`: None when there is no annotation or it is not a path.
fn annotation(arg: &str) -> Option<PathBuf> {
    let start = arg.find('<')?;
    let inner = arg[start + 1..].strip_suffix('>')?;
    if !inner.starts_with("\\x") {
        return None;
    }
    let bytes = unhex(inner);
    bytes
        .starts_with(b"/")
        .then(|| PathBuf::from(OsString::from_vec(bytes)))
}

/// Bytes from strace's `-xx` escapes (`\x41\x42`); other escapes kept as they are.
fn unhex(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 4);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') && i + 4 <= bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 2..i + 4], 16) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_read_with_their_paths_and_interrupted_ones_joined() {
        let trace = concat!(
            r#"10 openat(AT_FDCWD<\x2f\x74>, "\x61", O_WRONLY|O_CREAT|O_EXCL, 0644) = 3<\x2f\x74\x2f\x61>"#,
            "\n",
            r#"11 fsync(4<\x2f\x74> <unfinished ...>"#,
            "\n",
            r#"10 write(3<\x2f\x74\x2f\x61>, "\x6e\x2c\x0a", 3) = 3"#,
            "\n",
            "10 --- SIGCHLD {si_signo=SIGCHLD} ---\n",
            r#"11 <... fsync resumed>) = 0"#,
            "\n",
            r#"10 unlink("\x2f\x74\x2f\x62") = -1 ENOENT (No such file or directory)"#,
            "\n",
        );
        let calls = parse(trace);
        let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["openat", "write", "fsync", "unlink"]);
        let open = &calls[0];
        assert_eq!(open.at_path(0, 1), Path::new("/t/a"));
        assert!(open.has_flag(2, "O_CREAT") && !open.has_flag(2, "O_TRUNC"));
        assert_eq!(open.int(3), 0o644);
        assert_eq!(open.ret_path.as_deref(), Some(Path::new("/t/a")));
        assert_eq!(calls[1].bytes(1), b"n,\n");
        assert_eq!(calls[1].fd(0), Some(3));
        // The sync was entered when one call had returned, and returned third.
        assert_eq!(
            (calls[2].entered, calls[2].fd_path(0)),
            (1, Some("/t".into()))
        );
        assert_eq!(calls[3].ret, -1);
    }
}
