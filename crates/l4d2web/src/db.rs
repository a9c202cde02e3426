//! SQLite pool (WAL) and embedded migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

/// The database holds password hashes, session ids and every server's RCON
/// password: never readable by others, whoever creates it.
pub const DB_MODE: u32 = 0o640;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot create or protect database file {path}: {source}")]
    Protect {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Whether the database answers.
pub async fn ping(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::query_scalar::<_, i64>("SELECT 1")
        .fetch_one(pool)
        .await
        .map(drop)
}

/// The database file a `sqlite:` URL names.
pub fn file_of(url: &str) -> Result<std::path::PathBuf, DbError> {
    let options = SqliteConnectOptions::from_str(url).map_err(|source| DbError::Open {
        url: url.to_string(),
        source,
    })?;
    Ok(options.get_filename().to_path_buf())
}

/// Opens (creating if missing) the database in WAL mode. Does not migrate.
/// The file is created (and an existing one tightened) to [`DB_MODE`]
/// before SQLite opens it; SQLite gives its `-wal`/`-shm` files the
/// database file's mode.
pub async fn connect(url: &str) -> Result<SqlitePool, DbError> {
    let open_err = |source| DbError::Open {
        url: url.to_string(),
        source,
    };
    let options = SqliteConnectOptions::from_str(url).map_err(open_err)?;
    let path = options.get_filename().to_path_buf();
    if path != std::path::Path::new(":memory:") {
        protect_file(&path)?;
    }
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // NORMAL is durable across process crashes in WAL mode (only a power
        // loss may drop the last transactions), and much faster than FULL.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .map_err(open_err)
}

/// Creates `path` with [`DB_MODE`] if it is missing; removes group write and
/// every permission of others from it and its sidecars if it exists.
fn protect_file(path: &std::path::Path) -> Result<(), DbError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let protect = |source| DbError::Protect {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(DB_MODE)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(protect(e)),
    }
    let mut sidecars = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        sidecars.push(p.into());
    }
    for file in sidecars {
        let meta = match std::fs::metadata(&file) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(protect(e)),
        };
        let mode = meta.permissions().mode() & 0o7777;
        let tight = mode & DB_MODE;
        if tight != mode {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(tight))
                .map_err(protect)?;
        }
    }
    Ok(())
}

/// Applies all embedded migrations that are not applied yet.
pub async fn migrate(pool: &SqlitePool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Current UTC time as RFC 3339 text (the format stored in the database).
pub fn now_text() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// Current Unix time in seconds.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A fact the panel keeps about its host between runs (`panel_facts`).
pub async fn fact(pool: &SqlitePool, key: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM panel_facts WHERE key = ?")
        .bind(key)
        .fetch_optional(pool)
        .await
}

pub async fn set_fact(pool: &SqlitePool, key: &str, value: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO panel_facts (key, value) VALUES (?, ?)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(key)
    .bind(value)
    .execute(pool)
    .await
    .map(drop)
}
