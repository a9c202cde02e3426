//! Blueprints: a user's server recipe (ordered overlay stack, launch args,
//! server.cfg). User-private; servers are live-linked to one.

use sqlx::SqlitePool;

/// Longest blueprint name.
pub const MAX_NAME: usize = 64;
pub use l4d2_contract::spec::{MAX_ARGS, MAX_ARG_LEN};
/// server.cfg limit of the spec ([`l4d2_contract::spec::MAX_CONFIG_BYTES`])
/// minus room for the managed lines.
pub const MAX_CONFIG_BYTES: usize = l4d2_contract::spec::MAX_CONFIG_BYTES - 4 * 1024;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Blueprint {
    pub id: i64,
    pub owner_id: i64,
    pub name: String,
    pub args: String,
    pub config: String,
    pub created_at: String,
    pub updated_at: String,
}

/// One layer of a blueprint's stack (position 0 = uppermost).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StackEntry {
    pub position: i64,
    pub overlay_id: i64,
    pub name: String,
    pub kind: String,
    /// None: a system overlay.
    pub owner_id: Option<i64>,
}

/// An overlay a user may put into a blueprint: their own or a system one.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UsableOverlay {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub owner_id: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum BlueprintError {
    #[error("{0}")]
    Invalid(String),
    #[error("you already have a blueprint named {0:?}")]
    Duplicate(String),
    #[error("blueprint {name:?} is used by the server(s) {servers}; switch or delete them first")]
    InUse { name: String, servers: String },
    #[error("not found")]
    NotFound,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Validated blueprint fields from a form.
pub struct BlueprintInput {
    pub name: String,
    pub args: String,
    pub config: String,
}

impl BlueprintInput {
    pub fn validate(name: &str, args: &str, config: &str) -> Result<Self, BlueprintError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(BlueprintError::Invalid("enter a blueprint name".into()));
        }
        if name.chars().count() > MAX_NAME {
            return Err(BlueprintError::Invalid(format!(
                "blueprint name is longer than {MAX_NAME} characters"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(BlueprintError::Invalid(
                "blueprint name contains control characters".into(),
            ));
        }
        let words = split_args(args).map_err(|e| BlueprintError::Invalid(e.to_string()))?;
        if !has_map(&words) {
            return Err(BlueprintError::Invalid(
                "launch arguments need a first map, e.g. +map c1m1_hotel: without one the server never loads a map, so it never runs server.cfg (its RCON password and live events would not work)".into(),
            ));
        }
        // Browsers send CRLF line ends; server.cfg is stored with LF.
        let config = config.replace("\r\n", "\n");
        if config.len() > MAX_CONFIG_BYTES {
            return Err(BlueprintError::Invalid(format!(
                "server.cfg is {} bytes; at most {MAX_CONFIG_BYTES} are allowed",
                config.len()
            )));
        }
        if config.contains('\0') {
            return Err(BlueprintError::Invalid(
                "server.cfg contains a NUL byte".into(),
            ));
        }
        l4d2_contract::server_cfg::check_user_config(&config)
            .map_err(|e| BlueprintError::Invalid(e.to_string()))?;
        Ok(BlueprintInput {
            name: name.to_string(),
            args: args.trim().to_string(),
            config,
        })
    }
}

/// Splits launch arguments into argv words (shell-style quoting, never run
/// by a shell) and checks them with the rules `l4d2ctl` enforces
/// ([`l4d2_contract::launch::check_user_args`]): a bad blueprint is refused
/// when it is saved, not when a server starts.
pub fn split_args(text: &str) -> Result<Vec<String>, ArgsError> {
    let words = shell_words::split(text)?;
    l4d2_contract::launch::check_user_args(&words)?;
    Ok(words)
}

#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error("launch arguments cannot be split into words: {0}")]
    Split(#[from] shell_words::ParseError),
    #[error(transparent)]
    Refused(#[from] l4d2_contract::launch::LaunchArgError),
}

/// Whether the arguments load a map (`+map <name>`).
fn has_map(words: &[String]) -> bool {
    words
        .iter()
        .position(|w| w.eq_ignore_ascii_case("+map"))
        .is_some_and(|i| words.get(i + 1).is_some())
}

fn map_unique(e: sqlx::Error, name: &str) -> BlueprintError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            BlueprintError::Duplicate(name.to_string())
        }
        _ => BlueprintError::Db(e),
    }
}

pub async fn list(pool: &SqlitePool, owner: i64) -> Result<Vec<Blueprint>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM blueprints WHERE owner_id = ? ORDER BY name, id")
        .bind(owner)
        .fetch_all(pool)
        .await
}

/// The blueprint if `owner` owns it; otherwise `NotFound` (others' blueprints
/// do not exist for them, docs/product.md, Security rules).
/// The owner's blueprints, each with the number of servers made from it.
pub async fn list_with_server_counts(
    pool: &SqlitePool,
    owner: i64,
) -> Result<Vec<(Blueprint, i64)>, sqlx::Error> {
    let blueprints = list(pool, owner).await?;
    let counts: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT blueprint_id, COUNT(*) FROM servers WHERE owner_id = ? GROUP BY blueprint_id",
    )
    .bind(owner)
    .fetch_all(pool)
    .await?;
    Ok(blueprints
        .into_iter()
        .map(|b| {
            let n = counts
                .iter()
                .find(|(id, _)| *id == b.id)
                .map_or(0, |(_, n)| *n);
            (b, n)
        })
        .collect())
}

pub async fn find_owned(
    pool: &SqlitePool,
    owner: i64,
    id: i64,
) -> Result<Blueprint, BlueprintError> {
    sqlx::query_as("SELECT * FROM blueprints WHERE id = ? AND owner_id = ?")
        .bind(id)
        .bind(owner)
        .fetch_optional(pool)
        .await?
        .ok_or(BlueprintError::NotFound)
}

pub async fn create(
    pool: &SqlitePool,
    owner: i64,
    input: &BlueprintInput,
) -> Result<Blueprint, BlueprintError> {
    sqlx::query_as(
        "INSERT INTO blueprints (owner_id, name, args, config) VALUES (?, ?, ?, ?) RETURNING *",
    )
    .bind(owner)
    .bind(&input.name)
    .bind(&input.args)
    .bind(&input.config)
    .fetch_one(pool)
    .await
    .map_err(|e| map_unique(e, &input.name))
}

pub async fn update(
    pool: &SqlitePool,
    owner: i64,
    id: i64,
    input: &BlueprintInput,
) -> Result<(), BlueprintError> {
    let done = sqlx::query(
        "UPDATE blueprints SET name = ?, args = ?, config = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
         WHERE id = ? AND owner_id = ?",
    )
    .bind(&input.name)
    .bind(&input.args)
    .bind(&input.config)
    .bind(id)
    .bind(owner)
    .execute(pool)
    .await
    .map_err(|e| map_unique(e, &input.name))?;
    if done.rows_affected() == 0 {
        return Err(BlueprintError::NotFound);
    }
    Ok(())
}

/// Deletes a blueprint no server uses; otherwise says which servers do.
pub async fn delete(pool: &SqlitePool, owner: i64, id: i64) -> Result<String, BlueprintError> {
    let bp = find_owned(pool, owner, id).await?;
    let users: Vec<String> =
        sqlx::query_scalar("SELECT name FROM servers WHERE blueprint_id = ? ORDER BY name")
            .bind(id)
            .fetch_all(pool)
            .await?;
    if !users.is_empty() {
        return Err(BlueprintError::InUse {
            name: bp.name,
            servers: users.join(", "),
        });
    }
    match sqlx::query("DELETE FROM blueprints WHERE id = ? AND owner_id = ?")
        .bind(id)
        .bind(owner)
        .execute(pool)
        .await
    {
        Ok(_) => Ok(bp.name),
        // A server linked between the check and the delete: the FK refuses.
        Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {
            Err(BlueprintError::InUse {
                name: bp.name,
                servers: "a server created just now".into(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn stack(pool: &SqlitePool, blueprint_id: i64) -> Result<Vec<StackEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT b.position, b.overlay_id, o.name, o.kind, o.owner_id
         FROM blueprint_overlays b JOIN overlays o ON o.id = b.overlay_id
         WHERE b.blueprint_id = ? ORDER BY b.position",
    )
    .bind(blueprint_id)
    .fetch_all(pool)
    .await
}

/// Overlays `user` may stack: their own and the system ones.
pub async fn usable_overlays(
    pool: &SqlitePool,
    user: i64,
) -> Result<Vec<UsableOverlay>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, kind, owner_id FROM overlays
         WHERE owner_id = ? OR owner_id IS NULL ORDER BY owner_id IS NOT NULL, name, id",
    )
    .bind(user)
    .fetch_all(pool)
    .await
}

/// A change to a blueprint's overlay stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackOp {
    /// Put at the bottom (just above the installation).
    Add,
    Up,
    Down,
    Remove,
}

impl StackOp {
    pub fn parse(s: &str) -> Option<StackOp> {
        match s {
            "add" => Some(StackOp::Add),
            "up" => Some(StackOp::Up),
            "down" => Some(StackOp::Down),
            "remove" => Some(StackOp::Remove),
            _ => None,
        }
    }
}

/// Applies `op` for `overlay_id` to the stack of `owner`'s blueprint `id`.
/// The stack is rewritten in one transaction with dense positions.
pub async fn change_stack(
    pool: &SqlitePool,
    owner: i64,
    id: i64,
    op: StackOp,
    overlay_id: i64,
) -> Result<(), BlueprintError> {
    let mut tx = pool.begin().await?;
    let owned: Option<i64> =
        sqlx::query_scalar("SELECT id FROM blueprints WHERE id = ? AND owner_id = ?")
            .bind(id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
    if owned.is_none() {
        return Err(BlueprintError::NotFound);
    }
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "SELECT overlay_id FROM blueprint_overlays WHERE blueprint_id = ? ORDER BY position",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let at = ids.iter().position(|o| *o == overlay_id);
    match (op, at) {
        (StackOp::Add, Some(_)) => {
            return Err(BlueprintError::Invalid(
                "that overlay is already in the stack".into(),
            ))
        }
        (StackOp::Add, None) => {
            let usable: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM overlays WHERE id = ? AND (owner_id = ? OR owner_id IS NULL)",
            )
            .bind(overlay_id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
            if usable.is_none() {
                return Err(BlueprintError::Invalid(format!(
                    "overlay {overlay_id} does not exist or is not yours to use"
                )));
            }
            if ids.len() >= 499 {
                return Err(BlueprintError::Invalid(
                    "a blueprint stacks at most 499 overlays".into(),
                ));
            }
            ids.push(overlay_id);
        }
        (_, None) => {
            return Err(BlueprintError::Invalid(format!(
                "overlay {overlay_id} is not in this blueprint's stack"
            )))
        }
        (StackOp::Up, Some(i)) => {
            if i > 0 {
                ids.swap(i, i - 1);
            }
        }
        (StackOp::Down, Some(i)) => {
            if i + 1 < ids.len() {
                ids.swap(i, i + 1);
            }
        }
        (StackOp::Remove, Some(i)) => {
            ids.remove(i);
        }
    }
    sqlx::query("DELETE FROM blueprint_overlays WHERE blueprint_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    for (pos, ov) in ids.iter().enumerate() {
        sqlx::query(
            "INSERT INTO blueprint_overlays (blueprint_id, position, overlay_id) VALUES (?, ?, ?)",
        )
        .bind(id)
        .bind(pos as i64)
        .bind(ov)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE blueprints SET updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE id = ?",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_split_like_a_shell_without_one() {
        assert_eq!(
            split_args("+map c1m1_hotel  -tickrate 60").unwrap(),
            ["+map", "c1m1_hotel", "-tickrate", "60"]
        );
        assert_eq!(split_args("").unwrap(), Vec::<String>::new());
        assert!(split_args("+map 'unterminated")
            .unwrap_err()
            .to_string()
            .contains("cannot be split"));
        assert!(split_args("+hostname \"two words\"")
            .unwrap_err()
            .to_string()
            .contains("' '"));
        assert!(split_args("-x $(reboot)")
            .unwrap_err()
            .to_string()
            .contains("'$'"));
        assert!(split_args("+a;b").unwrap_err().to_string().contains("';'"));
        assert!(split_args(&"-nohltv ".repeat(65))
            .unwrap_err()
            .to_string()
            .contains("at most 64"));
    }

    #[test]
    fn blueprint_input_is_checked() {
        assert!(BlueprintInput::validate("  ", "+map c1m1_hotel", "").is_err());
        assert!(BlueprintInput::validate(&"x".repeat(65), "+map c1m1_hotel", "").is_err());
        assert!(BlueprintInput::validate("ok", "+map c1m1_hotel", "a\0b").is_err());
        let ok =
            BlueprintInput::validate(" coop ", "+map c1m1_hotel", "hostname \"x\"\r\n").unwrap();
        assert_eq!(ok.name, "coop");
        assert_eq!(ok.config, "hostname \"x\"\n");
    }

    #[test]
    fn what_the_panel_manages_is_refused_by_name() {
        for (args, config, expected) in [
            (
                "+map c1m1_hotel +hostport 27016",
                "",
                "`+hostport` is managed by left4me",
            ),
            ("+map c1m1_hotel +sv_logsecret 5", "", "`+sv_logsecret`"),
            ("+map c1m1_hotel -port 1", "", "`-port`"),
            ("+map c1m1_hotel -gdb", "", "`-gdb`"),
            (
                "+map c1m1_hotel",
                "hostname x\nrcon_password mine",
                "server.cfg line 2: `rcon_password`",
            ),
            (
                "+map c1m1_hotel",
                "logaddress_add 1.2.3.4:5",
                "`logaddress_add`",
            ),
            ("-tickrate 60", "", "need a first map"),
        ] {
            let Err(BlueprintError::Invalid(e)) = BlueprintInput::validate("b", args, config)
            else {
                panic!("{args} / {config} accepted");
            };
            assert!(e.contains(expected), "{args} / {config}: {e}");
        }
    }
}
