//! `l4d2ctl`: thin CLI over `l4d2host`.
fn main() {}
