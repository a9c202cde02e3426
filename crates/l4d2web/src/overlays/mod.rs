//! Overlays (docs/product.md): script overlays built in a sandbox, Steam
//! Workshop overlays linked into the shared cache, and what a server needs
//! to know about them before it mounts them.
//!
//! - [`model`]: rows, validation, create/edit/delete, who may see and edit
//!   what;
//! - [`build`]: script builds (bubblewrap locally, the root sandbox helper
//!   on systemd hosts); `sandbox`: the local build's sandbox; `tree`:
//!   walks over an overlay's files that never follow a symlink;
//! - [`workshop`]: workshop resolution, cache sync and addon links;
//! - [`ready`]: whether an overlay can be mounted now;
//! - [`files`]: the file browser (kernel-enforced path resolution);
//! - [`seed`]: `left4me seed-script-overlays <dir>`.

pub mod build;
pub mod files;
mod model;
mod ready;
mod sandbox;
pub mod seed;
mod tree;
pub use tree::{walk_tree, TreeError};
pub mod workshop;

pub use model::{
    create, delete, find, find_visible, list_visible, lock_key, normalize_script, overlay_dir,
    parse_refs, subject, update, validate_name, workshop_cache_file, Kind, Overlay, OverlayError,
    OverlayInput, MAX_DESCRIPTION, MAX_NAME, MAX_SCRIPT_BYTES, MAX_WORKSHOP_REFS,
};
pub use ready::{check_ready, NotReady};
pub use sandbox::find_bwrap;
