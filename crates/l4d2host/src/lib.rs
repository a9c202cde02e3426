//! Host-side operations for left4me: the data-root layout, instance specs,
//! overlayfs mounts, service backends (systemd / local), the steamcmd install
//! and console logs. `l4d2ctl` is a thin CLI over this crate; the privileged
//! `left4me-overlay` helper calls [`overlay`] directly.
