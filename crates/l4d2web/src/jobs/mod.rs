//! The job engine (docs/product.md, Jobs): a persistent queue of rows in
//! `jobs`, workers that claim them in order (one at a time per lock key),
//! the running job's context (its log, its child processes), the
//! fan-out of log lines to live viewers, and counts for metrics.
//!
//! The engine knows no job kinds: a [`Runner`] (the `tasks` module) says
//! what a job does. Nothing here calls into the domain.

mod ctx;
mod log;
mod model;
mod queue;
mod stats;

pub use ctx::{CommandRun, JobCtx, JobFailure};
pub use log::{JobEvent, JobLog};
pub use model::{Job, JobLine, JobState, LineStream, NewJob, Queued};
pub use queue::{Jobs, Runner};
pub use stats::{Durations, JobStats, StateCount, DURATION_BUCKETS};
