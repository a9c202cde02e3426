//! `left4me-systemctl [--dry-run] enable|disable|delete <name> | show <name>...`
//! (see `left4me_helpers::systemctl`).
use std::path::Path;
use std::process::ExitCode;

use left4me_helpers::systemctl::{self, DropIn, Plan, UNIT_DIR};
use left4me_helpers::{config, hop, Argv};

const HELPER: &str = "/usr/local/libexec/left4me/left4me-systemctl";

fn main() -> ExitCode {
    let (dry_run, args) = left4me_helpers::split_dry_run(std::env::args_os().skip(1).collect());
    let plan = match systemctl::plan(&args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("left4me-systemctl: {e}");
            return ExitCode::from(2);
        }
    };
    match run(dry_run, plan) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("left4me-systemctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(dry_run: bool, plan: Plan) -> anyhow::Result<ExitCode> {
    match plan {
        // Read-only and D-Bus only: fine from inside the caller's sandbox.
        Plan::Show(names) => {
            if dry_run {
                let units: Vec<String> = names
                    .iter()
                    .map(l4d2_contract::launch::server_unit)
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"dbus": "LoadUnit + Properties.Get", "units": units, "properties": systemctl::SHOW_PROPERTIES})
                );
                return Ok(ExitCode::SUCCESS);
            }
            print!("{}", left4me_helpers::units::show(&names)?);
            Ok(ExitCode::SUCCESS)
        }
        Plan::Disable(name) => finish(dry_run, systemctl::disable_argv(&name)),
        // These read the instance definition and write /etc/systemd: only
        // with real root, so first leave the caller's sandbox.
        Plan::Enable(ref name) | Plan::Delete(ref name) if !dry_run && !hop::fully_privileged() => {
            anyhow::ensure!(
                !hop::is_hop(),
                "no root privileges even in the transient unit; is this systemd?"
            );
            let verb = if matches!(plan, Plan::Enable(_)) {
                "enable"
            } else {
                "delete"
            };
            let argv = hop::transient_argv(
                &format!("left4me-systemctl {verb} {name}"),
                HELPER,
                &[verb.to_string(), name.to_string()],
            );
            Err(anyhow::anyhow!(
                "cannot exec {}: {}",
                argv.program,
                argv.exec()
            ))
        }
        Plan::Enable(name) => {
            let root = config::data_root()?;
            let env = l4d2host::instance::InstanceEnv::read(&l4d2host::Layout::new(&root), &name)?;
            let drop_in = DropIn::for_instance(Path::new(UNIT_DIR), &name, &env)?;
            let [reset, enable] = systemctl::enable_argvs(&name);
            if dry_run {
                let write =
                    serde_json::json!({"write": drop_in.path(), "content": drop_in.content});
                println!("{write}");
                println!("{}", systemctl::daemon_reload_argv().to_json_line());
                println!("{}", reset.to_json_line());
                println!("{}", enable.to_json_line());
                return Ok(ExitCode::SUCCESS);
            }
            if !drop_in.is_current() {
                drop_in.write()?;
                run_checked(&systemctl::daemon_reload_argv())?;
            }
            // Fails harmlessly when the unit was never loaded.
            let _ = reset.command().status();
            finish(false, enable)
        }
        Plan::Delete(name) => {
            let disable = systemctl::disable_argv(&name);
            let drop_in_dir = Path::new(UNIT_DIR)
                .join(format!("{}.d", l4d2_contract::launch::server_unit(&name)));
            if dry_run {
                println!("{}", disable.to_json_line());
                println!("{}", serde_json::json!({"remove": drop_in_dir}));
                return Ok(ExitCode::SUCCESS);
            }
            run_checked(&disable)?;
            match std::fs::remove_dir_all(&drop_in_dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    anyhow::bail!("cannot remove {}: {e}", drop_in_dir.display())
                }
                _ => Ok(ExitCode::SUCCESS),
            }
        }
    }
}

/// Prints (dry run) or becomes (exec) the last command.
fn finish(dry_run: bool, argv: Argv) -> anyhow::Result<ExitCode> {
    if dry_run {
        println!("{}", argv.to_json_line());
        return Ok(ExitCode::SUCCESS);
    }
    Err(anyhow::anyhow!(
        "cannot exec {}: {}",
        argv.program,
        argv.exec()
    ))
}

fn run_checked(argv: &Argv) -> anyhow::Result<()> {
    let status = argv.command().status()?;
    anyhow::ensure!(
        status.success(),
        "`{}` failed ({status})",
        argv.to_json_line()
    );
    Ok(())
}
