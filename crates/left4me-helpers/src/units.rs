//! The state of many game server units in one go, straight from systemd
//! over D-Bus (what `left4me-systemctl show` prints).
//!
//! `systemctl show` fetches every property of every interface of each unit
//! (hundreds per service) and prints the few asked for: ~3 ms per unit, so a
//! dashboard of 40 servers waited 126 ms for it. Here one connection asks
//! for just the properties the panel uses, many requests in flight at once,
//! and "enabled" comes from the unit's `multi-user.target.wants` link.

use std::path::Path;

use futures_util::future::try_join_all;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use l4d2_contract::launch::server_unit;
use l4d2host::InstanceName;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

const SYSTEMD: &str = "org.freedesktop.systemd1";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const SERVICE: &str = "org.freedesktop.systemd1.Service";
const WANTS: &str = "/etc/systemd/system/multi-user.target.wants";
/// What is asked per unit, in the order printed.
const PROPERTIES: [(&str, &str); 10] = [
    (UNIT, "ActiveState"),
    (UNIT, "SubState"),
    (SERVICE, "MainPID"),
    (SERVICE, "UID"),
    (SERVICE, "NRestarts"),
    (SERVICE, "Result"),
    (SERVICE, "ExecMainCode"),
    (SERVICE, "ExecMainStatus"),
    // systemd reads both from the unit's cgroup.
    (SERVICE, "CPUUsageNSec"),
    (SERVICE, "MemoryCurrent"),
];
/// Units queried at once. The system bus allows a connection 128 pending
/// replies (dbus-daemon's `max_replies_per_connection`); each unit has up
/// to ten in flight (one per property), so 12 units stay below it.
const UNITS_IN_FLIGHT: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum UnitsError {
    #[error("cannot reach systemd over D-Bus: {0}")]
    Bus(#[from] zbus::Error),
    #[error("systemd answered {property} of {unit} with something unexpected")]
    Unexpected {
        unit: String,
        property: &'static str,
    },
}

/// Prints `KEY=VALUE` blocks (as `systemctl show --property=…` does), one
/// per instance, separated by blank lines.
pub fn show(names: &[InstanceName]) -> Result<String, UnitsError> {
    let conn = zbus::blocking::Connection::system()?;
    zbus::block_on(show_async(conn.inner(), names))
}

async fn show_async(conn: &zbus::Connection, names: &[InstanceName]) -> Result<String, UnitsError> {
    let manager = zbus::Proxy::new(
        conn,
        SYSTEMD,
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
    )
    .await?;
    let blocks: Vec<String> = stream::iter(names.iter().map(server_unit))
        .map(|unit| unit_block(conn, &manager, unit))
        .buffered(UNITS_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(blocks.concat())
}

async fn unit_block(
    conn: &zbus::Connection,
    manager: &zbus::Proxy<'_>,
    unit: String,
) -> Result<String, UnitsError> {
    // LoadUnit (as systemctl show does): a template instance that is not
    // loaded yet still gets an object, in state inactive/dead.
    let path: OwnedObjectPath = manager.call("LoadUnit", &(unit.as_str(),)).await?;
    let props = zbus::Proxy::new(
        conn,
        SYSTEMD,
        path.as_ref(),
        "org.freedesktop.DBus.Properties",
    )
    .await?;
    let values = try_join_all(PROPERTIES.iter().map(|&(iface, property)| {
        let props = &props;
        async move {
            props
                .call::<_, _, OwnedValue>("Get", &(iface, property))
                .await
        }
    }))
    .await?;
    let mut out = format!("Id={unit}\n");
    for ((_, property), value) in PROPERTIES.iter().zip(values) {
        let text = match *property {
            "ActiveState" | "SubState" | "Result" => String::try_from(value).ok(),
            "ExecMainCode" | "ExecMainStatus" => i32::try_from(value).ok().map(|v| v.to_string()),
            "MainPID" | "NRestarts" => u32::try_from(value).ok().map(|v| v.to_string()),
            // UINT64_MAX: no cgroup yet, or accounting off.
            "CPUUsageNSec" | "MemoryCurrent" => u64::try_from(value).ok().map(|v| {
                if v == u64::MAX {
                    "[not set]".into()
                } else {
                    v.to_string()
                }
            }),
            // systemd reports "no dynamic user" as UINT32_MAX.
            "UID" => u32::try_from(value).ok().map(|v| {
                if v == u32::MAX {
                    "[not set]".into()
                } else {
                    v.to_string()
                }
            }),
            _ => None,
        };
        let text = text.ok_or_else(|| UnitsError::Unexpected {
            unit: unit.clone(),
            property,
        })?;
        out.push_str(&format!("{property}={text}\n"));
    }
    let enabled = Path::new(WANTS).join(&unit).symlink_metadata().is_ok();
    out.push_str(&format!(
        "UnitFileState={}\n\n",
        if enabled { "enabled" } else { "disabled" }
    ));
    Ok(out)
}
