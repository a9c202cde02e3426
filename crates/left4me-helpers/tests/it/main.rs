//! left4me-helpers' integration tests: one binary, one module per area.

mod cli;
mod deploy;
