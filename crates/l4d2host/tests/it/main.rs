//! l4d2host's integration tests: one binary, one module per area.

mod mount_rules;
