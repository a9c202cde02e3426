//! l4d2ctl's integration tests (the host contract's tests): one binary, one
//! module per area; the simulated game harness is `test_support::sim`.

mod bad_input;
mod builds;
mod install;
mod lifecycle;
