//! How far one render may go: its wall time, the loop iterations it runs, the bytes it
//! writes and how deep includes and macro calls nest. A template that recurses without end,
//! or a value from etcd that drives a loop (`n.times` with `n = 200000000`), then fails that
//! render alone, with the limit named, instead of exhausting the process's stack, memory or
//! time. Defaults are generous for real configuration files; the daemon's flags set them
//! for every entry, and an entry may set its own.

use std::time::Duration;

/// The limits of one render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderLimits {
    /// Wall time of one render.
    pub timeout: Duration,
    /// Loop iterations of one render, all loops together.
    pub iterations: u64,
    /// Bytes one render may produce (and the size of any one value it builds).
    pub output: u64,
    /// How deep includes and macro calls may nest.
    pub depth: u32,
}

/// The most a depth limit may be set to. Every level costs stack: whatever the limit, a
/// render that leaves its thread too little stack stops there too.
pub const MAX_DEPTH: u32 = 256;

impl Default for RenderLimits {
    fn default() -> RenderLimits {
        RenderLimits {
            timeout: Duration::from_secs(10),
            iterations: 10_000_000,
            output: 64 << 20,
            depth: 64,
        }
    }
}

/// An entry's own limits, each replacing the process-wide one it names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    /// `render_timeout`.
    pub timeout: Option<Duration>,
    /// `render_max_iterations`.
    pub iterations: Option<u64>,
    /// `render_max_output`.
    pub output: Option<u64>,
    /// `render_max_depth`.
    pub depth: Option<u32>,
}

impl LimitOverrides {
    /// The process-wide limits with this entry's own in their place.
    pub fn over(&self, base: RenderLimits) -> RenderLimits {
        RenderLimits {
            timeout: self.timeout.unwrap_or(base.timeout),
            iterations: self.iterations.unwrap_or(base.iterations),
            output: self.output.unwrap_or(base.output),
            depth: self.depth.unwrap_or(base.depth),
        }
    }
}

/// Parses a byte size: `1048576`, `64MiB`, `512 KiB`, `1G` (units of 1000 or 1024 as
/// written).
pub fn parse_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|_| {
            format!("invalid size {text:?}: use bytes (1048576) or a unit (64MiB, 512KiB)")
        })
}

/// Parses a depth limit: 1 to [`MAX_DEPTH`].
pub fn parse_depth(text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .ok()
        .and_then(check_depth)
        .ok_or_else(|| format!("invalid depth {text:?}: a number from 1 to {MAX_DEPTH}"))
}

/// A depth within 1 to [`MAX_DEPTH`].
pub fn check_depth(depth: u32) -> Option<u32> {
    (1..=MAX_DEPTH).contains(&depth).then_some(depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_replaces_only_what_it_names() {
        let base = RenderLimits::default();
        let own = LimitOverrides {
            iterations: Some(10),
            ..LimitOverrides::default()
        };
        let limits = own.over(base);
        assert_eq!(limits.iterations, 10);
        assert_eq!((limits.timeout, limits.depth), (base.timeout, base.depth));
    }

    #[test]
    fn sizes_and_depths_parse() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1 KiB"), Ok(1024));
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_depth("5"), Ok(5));
        assert!(parse_depth("0").is_err());
        assert!(parse_depth("100000").is_err());
    }
}
