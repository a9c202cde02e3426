//! The admin RCON console: what a command may look like, and the history
//! of commands sent (who, what, the answer).

use sqlx::SqlitePool;

/// Longest console command (an RCON request body holds 4086 bytes).
pub const MAX_COMMAND_LEN: usize = 512;
/// Console output kept per command.
const MAX_OUTPUT_STORED: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("enter a command")]
    Empty,
    #[error("the command is {0} bytes; the limit is {MAX_COMMAND_LEN}")]
    TooLong(usize),
    #[error("the command must be one line without control characters")]
    Control,
}

/// Checks a console command: one line, printable, not too long.
pub fn validate_command(command: &str) -> Result<&str, CommandError> {
    let command = command.trim();
    if command.is_empty() {
        return Err(CommandError::Empty);
    }
    if command.len() > MAX_COMMAND_LEN {
        return Err(CommandError::TooLong(command.len()));
    }
    if command.chars().any(char::is_control) {
        return Err(CommandError::Control);
    }
    Ok(command)
}

/// One command in the history.
#[derive(Debug, sqlx::FromRow)]
pub struct HistoryEntry {
    pub created_at: String,
    pub username: Option<String>,
    pub command: String,
    pub output: String,
    pub ok: bool,
}

/// The newest `limit` commands sent to server `id`.
pub async fn history(
    pool: &SqlitePool,
    server_id: i64,
    limit: i64,
) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT h.created_at, u.username, h.command, h.output, h.ok FROM console_history h
         LEFT JOIN users u ON u.id = h.user_id WHERE h.server_id = ? ORDER BY h.id DESC LIMIT ?",
    )
    .bind(server_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Records a command and its answer (long answers cut).
pub async fn record(
    pool: &SqlitePool,
    server_id: i64,
    user_id: i64,
    command: &str,
    ok: bool,
    mut output: String,
) -> Result<(), sqlx::Error> {
    if output.len() > MAX_OUTPUT_STORED {
        let mut cut = MAX_OUTPUT_STORED;
        while !output.is_char_boundary(cut) {
            cut -= 1;
        }
        output.truncate(cut);
        output.push_str("\n[output truncated]");
    }
    sqlx::query(
        "INSERT INTO console_history (server_id, user_id, command, output, ok) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(server_id)
    .bind(user_id)
    .bind(command)
    .bind(&output)
    .bind(ok)
    .execute(pool)
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_commands_are_one_printable_line() {
        assert_eq!(validate_command("  status ").unwrap(), "status");
        assert_eq!(validate_command(""), Err(CommandError::Empty));
        assert_eq!(validate_command("say a\nquit"), Err(CommandError::Control));
        assert_eq!(validate_command("say \u{7}"), Err(CommandError::Control));
        assert_eq!(
            validate_command(&"x".repeat(MAX_COMMAND_LEN + 1)),
            Err(CommandError::TooLong(MAX_COMMAND_LEN + 1))
        );
        assert!(validate_command(&"x".repeat(MAX_COMMAND_LEN)).is_ok());
    }
}
