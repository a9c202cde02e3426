//! What the benches that serve the web app in-process share: a panel on
//! the local backend over an installed (simulated) data root, with one
//! user and one blueprint.

use std::collections::HashMap;

use l4d2web::accounts::User;
use l4d2web::config::{self, Config, EnvSource};
use l4d2web::servers::blueprints::{self, Blueprint, BlueprintInput};
use test_support::{workspace_bin, DataRoot};

pub struct Panel {
    pub config: Config,
    pub pool: sqlx::SqlitePool,
    pub user: User,
    pub blueprint: Blueprint,
}

/// A panel on `root` giving game ports from `range_start` for `servers`
/// servers, its blueprint launching with `args`; `extra` adds settings.
pub async fn panel(
    root: &DataRoot,
    range_start: u16,
    servers: usize,
    args: &str,
    extra: &[(&'static str, String)],
) -> Panel {
    let rp = root.path().display().to_string();
    let end = (range_start as usize + servers + 50).min(27999).to_string();
    let mut map: HashMap<&str, String> = HashMap::from([
        ("LEFT4ME_ROOT", rp.clone()),
        (
            "SECRET_KEY",
            "bench-secret-key-0123456789abcdef-0123".to_string(),
        ),
        ("LEFT4ME_BIND", "127.0.0.1:0".to_string()),
        ("LEFT4ME_BACKEND", "local".to_string()),
        ("LEFT4ME_PORT_RANGE_START", range_start.to_string()),
        ("LEFT4ME_PORT_RANGE_END", end),
    ]);
    map.extend(extra.iter().cloned());
    let mut config = config::load(&EnvSource(|k| map.get(k).cloned())).unwrap();
    config.l4d2ctl = Some(workspace_bin("l4d2ctl"));
    config.child_env = vec![
        ("LEFT4ME_ROOT".into(), rp),
        ("LEFT4ME_BACKEND".into(), "local".into()),
        (
            "LEFT4ME_STEAMCMD".into(),
            root.steamcmd().display().to_string(),
        ),
    ];
    let pool = l4d2web::db::connect(&config.database_url).await.unwrap();
    l4d2web::db::migrate(&pool).await.unwrap();
    let user = l4d2web::accounts::create_user(&pool, "bench", "bench-password-1", false)
        .await
        .unwrap();
    let input = BlueprintInput::validate("bench", args, "hostname \"bench\"\n").unwrap();
    let blueprint = blueprints::create(&pool, user.id, &input).await.unwrap();
    Panel {
        config,
        pool,
        user,
        blueprint,
    }
}
