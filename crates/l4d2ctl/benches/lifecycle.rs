//! Lifecycle benchmark (not a test: it reports, it asserts nothing about time).
//!
//!   cargo build --release --workspace --bins && cargo bench -p l4d2ctl --bench lifecycle
//!
//! Reports, on the local backend with srcds-sim:
//! * initialize + start until A2S_INFO answers,
//! * reset (delete + initialize + start until A2S answers) with 10 overlays,
//! * the disk a fresh instance uses against the installation's size.

use std::path::Path;
use std::time::{Duration, Instant};

use test_support::sim::wait_for_a2s;
use test_support::{free_game_port, DataRoot};

const ROUNDS: usize = 10;

fn ctl(root: &DataRoot, args: &[&str]) {
    let out = root.l4d2ctl(args);
    assert!(
        out.status.success(),
        "l4d2ctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label:<48} n={:<3} min {:>7.1} ms  median {:>7.1} ms  max {:>7.1} ms",
        samples.len(),
        ms(samples[0]),
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1])
    );
}

fn spec(root: &DataRoot, port: u16, overlays: &[String]) -> std::path::PathBuf {
    let path = root.path().join(format!("spec-{port}.yaml"));
    std::fs::write(
        &path,
        format!(
            "port: {port}\noverlays: [{}]\nargs: [+map, c1m1_hotel, -sim_churn, \"0\"]\nconfig: |\n  hostname \"bench {port}\"\n",
            overlays.join(", ")
        ),
    )
    .unwrap();
    path
}

fn start_until_a2s(root: &DataRoot, name: &str, spec: &Path, port: u16) -> Duration {
    let t = Instant::now();
    ctl(root, &["initialize", name, "-f", spec.to_str().unwrap()]);
    ctl(root, &["start", name]);
    wait_for_a2s(port, Duration::from_secs(30)).expect("server answers A2S");
    t.elapsed()
}

fn main() {
    // `cargo bench` passes --bench; nothing to filter here.
    let root = DataRoot::installed();
    println!(
        "left4me lifecycle benchmark (local backend, srcds-sim, uid {})",
        unsafe { libc::geteuid() }
    );

    let mut cold = Vec::new();
    for i in 0..ROUNDS {
        let port = free_game_port();
        let name = format!("cold{i}");
        let spec = spec(&root, port, &[]);
        cold.push(start_until_a2s(&root, &name, &spec, port));
        ctl(&root, &["delete", &name]);
    }
    summary("initialize + start until A2S answers", cold);

    let overlays: Vec<String> = (0..10)
        .map(|i| {
            let dir = root.path().join(format!("overlays/o{i}/left4dead2/cfg"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("overlay{i}.cfg")), "sv_cheats 0\n").unwrap();
            format!("overlays/o{i}")
        })
        .collect();
    let port = free_game_port();
    let spec10 = spec(&root, port, &overlays);
    start_until_a2s(&root, "reset", &spec10, port);
    let mut resets = Vec::new();
    for _ in 0..ROUNDS {
        // What the web app's reset does: delete, initialize, start.
        let t = Instant::now();
        ctl(&root, &["delete", "reset"]);
        resets.push(t.elapsed() + start_until_a2s(&root, "reset", &spec10, port));
    }
    summary("reset (delete+initialize+start) with 10 overlays", resets);

    let installation = root.path().join("installation");
    // What the instance owns on disk: its definition and the upper/work
    // layers. `merged` is the mounted view of everything below, not disk.
    let instance: u64 = [
        "instances/reset",
        "runtime/reset/upper",
        "runtime/reset/work",
    ]
    .iter()
    .map(|p| tree_disk_usage(&root.path().join(p)))
    .sum();
    let install_disk = tree_disk_usage(&installation);
    println!(
        "disk: installation {:.1} MiB ({:.1} MiB of file data); fresh running instance {:.1} KiB ({:.4}% of the installation)",
        install_disk as f64 / 1048576.0,
        tree_bytes(&installation) as f64 / 1048576.0,
        instance as f64 / 1024.0,
        instance as f64 * 100.0 / install_disk as f64
    );
    ctl(&root, &["delete", "reset"]);
}

/// Total bytes of regular files below `path` (apparent size), not following links.
fn tree_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .map(|entries| entries.flatten().map(|e| tree_bytes(&e.path())).sum())
            .unwrap_or(0)
    } else if meta.is_file() {
        meta.len()
    } else {
        0
    }
}

/// Disk blocks actually allocated below `path`, in bytes (what `du` reports).
fn tree_disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if meta.is_dir() {
        own + std::fs::read_dir(path)
            .map(|entries| entries.flatten().map(|e| tree_disk_usage(&e.path())).sum())
            .unwrap_or(0)
    } else {
        own
    }
}
