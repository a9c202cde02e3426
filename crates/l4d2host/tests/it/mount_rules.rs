//! The overlay rules as the privileged helper meets them: an `instance.env`
//! (or a runtime tree) tampered with after `initialize` validated it. The
//! root path (`ViewPlan`) and the unprivileged path (`MountPlan`) share the
//! rules; every case is checked against both.

use std::path::Path;

use l4d2host::overlay::MountPlan;
use l4d2host::view::ViewPlan;
use l4d2host::{InstanceName, Layout};

fn layout_with_instance() -> (tempfile::TempDir, Layout, InstanceName) {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path().canonicalize().unwrap());
    let name = InstanceName::parse("srv").unwrap();
    for d in [
        layout.installation(),
        layout.overlays().join("a"),
        layout.workshop_cache(),
        layout.instance_dir(&name),
        layout.upper(&name),
        layout.work(&name),
        layout.merged(&name),
    ] {
        std::fs::create_dir_all(d).unwrap();
    }
    (dir, layout, name)
}

fn write_env(layout: &Layout, name: &InstanceName, lowerdirs: &[&Path]) {
    let joined: Vec<String> = lowerdirs.iter().map(|p| p.display().to_string()).collect();
    std::fs::write(
        layout.instance_env(name),
        format!(
            "L4D2_PORT=27015\nL4D2_ARGS=\"\"\nL4D2_LOWERDIRS=\"{}\"\n",
            joined.join(":")
        ),
    )
    .unwrap();
}

/// The error both preparations give (they must agree).
fn prepare_err(layout: &Layout, name: &InstanceName) -> String {
    let view = match ViewPlan::prepare(layout, name) {
        Ok(_) => panic!("tampered definition was accepted by ViewPlan"),
        Err(e) => e.to_string(),
    };
    match MountPlan::prepare(layout, name) {
        Ok(_) => panic!("tampered definition was accepted by MountPlan"),
        Err(e) => assert_eq!(e.to_string(), view),
    }
    view
}

#[test]
fn valid_definition_is_accepted() {
    let (_d, layout, name) = layout_with_instance();
    write_env(
        &layout,
        &name,
        &[&layout.overlays().join("a"), &layout.installation()],
    );
    MountPlan::prepare(&layout, &name).unwrap();
    ViewPlan::prepare(&layout, &name).unwrap();
}

#[test]
fn lowerdir_outside_the_roots_is_refused() {
    let (_d, layout, name) = layout_with_instance();
    write_env(&layout, &name, &[Path::new("/etc"), &layout.installation()]);
    let e = prepare_err(&layout, &name);
    assert!(
        e.contains("lowerdir /etc") && e.contains("not inside the data root"),
        "{e}"
    );
}

#[test]
fn the_overlays_root_itself_is_refused() {
    let (_d, layout, name) = layout_with_instance();
    write_env(
        &layout,
        &name,
        &[&layout.overlays(), &layout.installation()],
    );
    assert!(prepare_err(&layout, &name).contains("strictly inside overlays/"));
}

#[test]
fn symlink_swapped_in_after_initialize_is_refused() {
    let (_d, layout, name) = layout_with_instance();
    let a = layout.overlays().join("a");
    std::fs::remove_dir(&a).unwrap();
    std::os::unix::fs::symlink("/etc", &a).unwrap();
    write_env(&layout, &name, &[&a, &layout.installation()]);
    let e = prepare_err(&layout, &name);
    assert!(e.contains("symlink is in the way"), "{e}");
}

#[test]
fn relative_lowerdir_is_refused() {
    let (_d, layout, name) = layout_with_instance();
    write_env(
        &layout,
        &name,
        &[Path::new("overlays/a"), &layout.installation()],
    );
    assert!(prepare_err(&layout, &name).contains("not an absolute path"));
}

#[test]
fn upper_pointing_outside_the_runtime_dir_is_refused() {
    let (_d, layout, name) = layout_with_instance();
    write_env(&layout, &name, &[&layout.installation()]);
    std::fs::remove_dir(layout.upper(&name)).unwrap();
    std::os::unix::fs::symlink(layout.overlays().join("a"), layout.upper(&name)).unwrap();
    let e = prepare_err(&layout, &name);
    assert!(
        e.contains("runtime/srv/upper") && e.contains("symlink"),
        "{e}"
    );
}

#[test]
fn more_than_500_lowerdirs_are_refused() {
    let (_d, layout, name) = layout_with_instance();
    let a = layout.overlays().join("a");
    let many: Vec<&Path> = std::iter::repeat_n(a.as_path(), 501).collect();
    write_env(&layout, &name, &many);
    assert!(prepare_err(&layout, &name).contains("at most 500"));
}

#[test]
fn missing_or_garbled_instance_env_is_an_error_that_quotes_nothing() {
    let (_d, layout, name) = layout_with_instance();
    assert!(prepare_err(&layout, &name).contains("does not exist"));
    std::fs::write(
        layout.instance_env(&name),
        "L4D2_PORT=1\nSECRET_FROM_ANOTHER_FILE=hunter2\n",
    )
    .unwrap();
    let e = prepare_err(&layout, &name);
    assert!(e.contains("unknown key"), "{e}");
    assert!(!e.contains("SECRET") && !e.contains("hunter2"), "{e}");
    std::fs::write(layout.instance_env(&name), "L4D2_PORT=hunter2\n").unwrap();
    assert!(!prepare_err(&layout, &name).contains("hunter2"));
}

#[test]
fn instance_env_that_is_a_symlink_or_fifo_is_refused() {
    let (d, layout, name) = layout_with_instance();
    let elsewhere = d.path().join("elsewhere.env");
    std::fs::write(&elsewhere, "L4D2_PORT=1\nL4D2_LOWERDIRS=/x\n").unwrap();
    std::os::unix::fs::symlink(&elsewhere, layout.instance_env(&name)).unwrap();
    assert!(prepare_err(&layout, &name).contains("symlink"));
    std::fs::remove_file(layout.instance_env(&name)).unwrap();
    let fifo = std::ffi::CString::new(layout.instance_env(&name).to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    assert!(prepare_err(&layout, &name).contains("not a regular file"));
}
