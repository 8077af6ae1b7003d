//! Templates on disk: Chef or an editor rewriting a template makes the daemon load its
//! configuration afresh, as SIGHUP does.

use std::path::Path;

use tokio::sync::mpsc;
use tracing::warn;

/// Sends a message whenever something in the templates directory changes.
pub fn watch_templates(
    dir: &Path,
    tx: mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if matches!(
                event.kind,
                EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
            ) {
                let _ = tx.send(());
            }
        }
    })
    .map_err(|e| warn!("cannot watch {}: {e}", dir.display()))
    .ok()?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| warn!("cannot watch {}: {e}", dir.display()))
        .ok()?;
    Some(watcher)
}
