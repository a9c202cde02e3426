//! Blueprints and servers (SPEC §7): the recipe, the instances made from
//! it, and the jobs that drive them through `l4d2ctl`.

use crate::jobs::{JobCtx, JobFailure};

/// Runs a `server-*` job.
pub async fn run_job(ctx: &mut JobCtx) -> Result<(), JobFailure> {
    Err(JobFailure::msg(format!(
        "job kind {:?} is not implemented yet (servers, issue 6)",
        ctx.job.kind
    )))
}
