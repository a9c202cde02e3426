//! Privileged helpers.
