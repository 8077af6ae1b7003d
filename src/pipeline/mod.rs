//! One entry's step along the data path — the keys read at one revision, the template
//! rendered, the target applied (`step`) — and the modes that take it once: `--onetime`
//! (`onetime`) and, up to the render, `reconfig render` (`offline`). The daemon's workers
//! take it for every change ([`crate::daemon`]); an entry with a `rollout` object takes it
//! as its part in its group's rollout (`rollout`).

mod offline;
mod onetime;
mod rollout;
mod status;
mod step;

pub use offline::{render_offline, OfflineError, RenderSettings};
pub use onetime::{onetime, OnetimeError, RunSettings};
pub use rollout::{Rolled, Rolling};
pub use status::{status, StatusError, StatusSettings};
pub use step::{
    apply_render, load_jobs, log_failure, own_snapshot, pass_of, recover, reload, remove_leftovers,
    render_kept, state_dir, Job, LoadError, StepError,
};
