//! Telling systemd how the service is doing (`Type=notify`, see sd_notify(3)): ready once
//! the first full sync is done, stopping on shutdown, and watchdog pings while the runtime
//! runs. Outside systemd (`NOTIFY_SOCKET` unset) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{debug, warn};

/// Reports that the service is up: every target was rendered once.
pub fn ready() {
    send(&[NotifyState::Ready]);
}

/// Reports that the service is shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!("cannot notify systemd: {e}");
    }
}

/// With `WatchdogSec=` set (systemd passes `WATCHDOG_USEC`), pings the watchdog at half
/// its period from a task of the runtime, so a hung runtime gets the service restarted.
/// Idle otherwise.
pub fn start_watchdog() {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (period / 2).max(Duration::from_millis(1));
    debug!("pinging the systemd watchdog every {every:?}");
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = sd_notify::notify(&[NotifyState::Watchdog]) {
                debug!("cannot ping the systemd watchdog: {e}");
            }
        }
    });
}
