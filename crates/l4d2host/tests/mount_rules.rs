//! SPEC §5 rules as the privileged helper meets them: an `instance.env`
//! that was tampered with after `initialize` validated it.

use std::path::Path;

use l4d2host::overlay::{self, MountPlan, OverlayError};
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

fn prepare_err(layout: &Layout, name: &InstanceName) -> String {
    match MountPlan::prepare(layout, name) {
        Ok(_) => panic!("tampered instance.env was accepted"),
        Err(e) => e.to_string(),
    }
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
}

#[test]
fn lowerdir_outside_the_roots_is_refused() {
    let (_d, layout, name) = layout_with_instance();
    write_env(&layout, &name, &[Path::new("/etc"), &layout.installation()]);
    let e = prepare_err(&layout, &name);
    assert!(
        e.contains("lowerdir /etc") && e.contains("not inside"),
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
    assert!(prepare_err(&layout, &name).contains("not inside"));
}

#[test]
fn symlink_swapped_in_after_initialize_is_refused() {
    let (_d, layout, name) = layout_with_instance();
    let a = layout.overlays().join("a");
    std::fs::remove_dir(&a).unwrap();
    std::os::unix::fs::symlink("/etc", &a).unwrap();
    write_env(&layout, &name, &[&a, &layout.installation()]);
    let e = prepare_err(&layout, &name);
    assert!(e.contains("resolves to /etc"), "{e}");
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
    match MountPlan::prepare(&layout, &name) {
        Err(OverlayError::OutsideRuntime { actual, .. }) => assert!(actual.ends_with("overlays/a")),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("symlinked upper accepted"),
    }
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
fn missing_or_garbled_instance_env_is_an_error() {
    let (_d, layout, name) = layout_with_instance();
    assert!(prepare_err(&layout, &name).contains("cannot read"));
    std::fs::write(layout.instance_env(&name), "L4D2_PORT=1\nEVIL=1\n").unwrap();
    assert!(prepare_err(&layout, &name).contains("unknown key"));
}

#[test]
fn umount_of_an_unmounted_instance_is_a_noop() {
    let (_d, layout, name) = layout_with_instance();
    assert_eq!(
        overlay::umount(&layout, &name).unwrap(),
        overlay::UmountOutcome::NotMounted
    );
}
