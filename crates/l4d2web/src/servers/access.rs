//! Who may do what on a server: its owner, the users it is shared with
//! (viewer, operator, manager) and administrators.
//!
//! The rule every page, action, stream and API route applies: no role on
//! the server → it does not exist for you (404); a role too low for the
//! request → 403. Blueprints and private overlays stay their owner's: a
//! shared server still runs with its owner's blueprint.

use sqlx::SqlitePool;

use super::model::{ServerRow, SERVER_COLUMNS};
use crate::accounts::{self, User};

/// What a request needs on a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Right {
    /// Its page, state, live panel and console log.
    View,
    /// Start, stop, restart, reconcile.
    Operate,
    /// The RCON console.
    Rcon,
    /// Reset, blueprint switch, schedules, sharing.
    Manage,
    /// Deleting it.
    Own,
}

/// A user's role on a server, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Manager,
    Owner,
    /// An administrator who is not the owner: every right, and every act
    /// of theirs on the server is in the audit log.
    Admin,
}

impl Role {
    /// The roles an owner can grant.
    pub const GRANTABLE: [Role; 3] = [Role::Viewer, Role::Operator, Role::Manager];

    pub fn allows(self, right: Right) -> bool {
        match self {
            Role::Viewer => right == Right::View,
            Role::Operator => matches!(right, Right::View | Right::Operate | Right::Rcon),
            Role::Manager => right != Right::Own,
            Role::Owner | Role::Admin => true,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Manager => "manager",
            Role::Owner => "owner",
            Role::Admin => "administrator",
        }
    }

    pub fn parse_grantable(s: &str) -> Option<Role> {
        Self::GRANTABLE.into_iter().find(|r| r.as_str() == s)
    }
}

/// A server and the visitor's role on it.
#[derive(Debug, Clone)]
pub struct ServerAccess {
    pub server: ServerRow,
    pub role: Role,
}

/// The visitor's role on server `id` (None: none at all).
pub async fn access(
    pool: &SqlitePool,
    user: &User,
    id: i64,
) -> Result<Option<ServerAccess>, sqlx::Error> {
    let server: Option<ServerRow> = sqlx::query_as(&format!(
        "SELECT {SERVER_COLUMNS} FROM servers s JOIN blueprints b ON b.id = s.blueprint_id WHERE s.id = ?"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(server) = server else {
        return Ok(None);
    };
    if server.owner_id == user.id {
        return Ok(Some(ServerAccess {
            server,
            role: Role::Owner,
        }));
    }
    if user.is_admin {
        return Ok(Some(ServerAccess {
            server,
            role: Role::Admin,
        }));
    }
    let shared: Option<Role> =
        sqlx::query_scalar("SELECT role FROM server_shares WHERE server_id = ? AND user_id = ?")
            .bind(id)
            .bind(user.id)
            .fetch_optional(pool)
            .await?;
    Ok(shared.map(|role| ServerAccess { server, role }))
}

/// Every server the visitor has a role on, by name: their own, those
/// shared with them, and for administrators every server.
pub async fn visible(pool: &SqlitePool, user: &User) -> Result<Vec<ServerAccess>, sqlx::Error> {
    let rows: Vec<ServerRow> = sqlx::query_as(&format!(
        "SELECT {SERVER_COLUMNS} FROM servers s JOIN blueprints b ON b.id = s.blueprint_id
         WHERE ?1 OR s.owner_id = ?2
            OR s.id IN (SELECT server_id FROM server_shares WHERE user_id = ?2)
         ORDER BY s.name"
    ))
    .bind(user.is_admin)
    .bind(user.id)
    .fetch_all(pool)
    .await?;
    let shared: Vec<(i64, Role)> =
        sqlx::query_as("SELECT server_id, role FROM server_shares WHERE user_id = ?")
            .bind(user.id)
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|server| {
            let role = if server.owner_id == user.id {
                Role::Owner
            } else if user.is_admin {
                Role::Admin
            } else {
                shared
                    .iter()
                    .find(|(id, _)| *id == server.id)
                    .map(|(_, r)| *r)
                    .unwrap_or(Role::Viewer)
            };
            ServerAccess { server, role }
        })
        .collect())
}

/// One user a server is shared with.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Share {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub created_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    #[error("unknown role {0:?} (viewer, operator or manager)")]
    UnknownRole(String),
    #[error("{0} owns this server already")]
    IsOwner(String),
    #[error("{0} is disabled")]
    Disabled(String),
    #[error("this server is not shared with that user")]
    NotShared,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

pub async fn shares(pool: &SqlitePool, server_id: i64) -> Result<Vec<Share>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sh.user_id, u.username, sh.role, sh.created_at FROM server_shares sh
         JOIN users u ON u.id = sh.user_id WHERE sh.server_id = ? ORDER BY u.username",
    )
    .bind(server_id)
    .fetch_all(pool)
    .await
}

/// Shares `server` with `username` as `role`, or changes their role.
pub async fn grant(
    pool: &SqlitePool,
    server: &ServerRow,
    username: &str,
    role: &str,
    granted_by: i64,
) -> Result<(User, Role), ShareError> {
    let role = Role::parse_grantable(role.trim())
        .ok_or_else(|| ShareError::UnknownRole(role.to_string()))?;
    let name = username.trim();
    let user = accounts::find_by_name(pool, name)
        .await?
        .ok_or_else(|| ShareError::NoSuchUser(name.to_string()))?;
    if user.id == server.owner_id {
        return Err(ShareError::IsOwner(user.username));
    }
    if user.disabled {
        return Err(ShareError::Disabled(user.username));
    }
    sqlx::query(
        "INSERT INTO server_shares (server_id, user_id, role, granted_by) VALUES (?, ?, ?, ?)
         ON CONFLICT (server_id, user_id) DO UPDATE SET role = excluded.role, granted_by = excluded.granted_by",
    )
    .bind(server.id)
    .bind(user.id)
    .bind(role)
    .bind(granted_by)
    .execute(pool)
    .await?;
    Ok((user, role))
}

/// Takes back whatever role `user_id` had on server `server_id`.
pub async fn revoke(pool: &SqlitePool, server_id: i64, user_id: i64) -> Result<String, ShareError> {
    let name: Option<String> = sqlx::query_scalar(
        "DELETE FROM server_shares WHERE server_id = ? AND user_id = ?
         RETURNING (SELECT username FROM users WHERE id = user_id)",
    )
    .bind(server_id)
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    name.ok_or(ShareError::NotShared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_rights() {
        use Right::*;
        let table = [
            (Role::Viewer, [true, false, false, false, false]),
            (Role::Operator, [true, true, true, false, false]),
            (Role::Manager, [true, true, true, true, false]),
            (Role::Owner, [true, true, true, true, true]),
            (Role::Admin, [true, true, true, true, true]),
        ];
        for (role, expected) in table {
            for (right, want) in [View, Operate, Rcon, Manage, Own].into_iter().zip(expected) {
                assert_eq!(role.allows(right), want, "{role:?} {right:?}");
            }
        }
        assert_eq!(Role::parse_grantable("manager"), Some(Role::Manager));
        assert_eq!(Role::parse_grantable("owner"), None);
        assert_eq!(Role::parse_grantable("admin"), None);
    }
}
