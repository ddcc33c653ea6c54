//! A fresh database for every case, quickly: SQLite copies a migrated template file (on tmpfs
//! when the machine has one); PostgreSQL clones a migrated template database.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crowdledger::config::DatabaseUrl;
use crowdledger::db;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::helpers::{engine_is_postgres, postgres_base};

static CASES: AtomicU64 = AtomicU64::new(0);

/// The migrated template every case starts from.
pub enum Template {
    Sqlite {
        dir: tempfile::TempDir,
        file: PathBuf,
    },
    Postgres {
        admin: String,
        prefix: String,
        name: String,
    },
}

/// One case's database; removed when dropped.
pub struct Store {
    pub url: DatabaseUrl,
    drop_pg: Option<(String, String)>,
    file: Option<PathBuf>,
}

/// The staff every case starts with: `world::ACTIVE_ADMINS` active admins (each emailed when
/// a refund fails) and one disabled admin (not emailed).
fn add_admins(c: &mut db::DbConn) {
    use crowdledger::db::schema::users;
    for (email, disabled) in [
        ("admin1@example.org", false),
        ("admin2@example.org", false),
        ("gone@example.org", true),
    ] {
        diesel::insert_into(users::table)
            .values((
                users::email.eq(email),
                users::password_hash.eq("x"),
                users::role.eq("admin"),
                users::created_at.eq(db::now()),
                users::disabled.eq(disabled),
            ))
            .execute(c)
            .expect("admin added");
    }
}

impl Template {
    /// Migrates a template database of the engine chosen by `TEST_DATABASE`.
    pub fn new() -> Template {
        if engine_is_postgres() {
            let admin = postgres_base();
            let (prefix, _) = admin.rsplit_once('/').expect("postgres url has a database");
            let prefix = prefix.to_owned();
            let name = format!(
                "cl_test_model_tpl_{}_{}",
                std::process::id(),
                rand::random::<u32>()
            );
            let mut c = PgConnection::establish(&admin).expect("PostgreSQL reachable for tests");
            c.batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("template created");
            let url = DatabaseUrl::Postgres(format!("{prefix}/{name}"));
            {
                let mut c = db::establish(&url).expect("template reachable");
                db::migrate(&mut c).expect("migrates");
                add_admins(&mut c);
            }
            Template::Postgres {
                admin,
                prefix,
                name,
            }
        } else {
            let shm = std::path::Path::new("/dev/shm");
            let dir = if shm.is_dir() {
                tempfile::tempdir_in(shm)
            } else {
                tempfile::tempdir()
            }
            .expect("temp dir");
            let file = dir.path().join("template.db");
            let url = DatabaseUrl::Sqlite(file.display().to_string());
            {
                let mut c = db::establish(&url).expect("template opens");
                db::migrate(&mut c).expect("migrates");
                add_admins(&mut c);
                // Fold the WAL into the main file so copying that file copies everything.
                c.batch_execute("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
                    .expect("checkpoint");
            }
            Template::Sqlite { dir, file }
        }
    }

    /// A new database with the schema and nothing else.
    pub fn fresh(&self) -> Store {
        let n = CASES.fetch_add(1, Ordering::SeqCst);
        match self {
            Template::Sqlite { dir, file } => {
                let path = dir.path().join(format!("case-{n}.db"));
                std::fs::copy(file, &path).expect("template copied");
                Store {
                    url: DatabaseUrl::Sqlite(path.display().to_string()),
                    drop_pg: None,
                    file: Some(path),
                }
            }
            Template::Postgres {
                admin,
                prefix,
                name,
            } => {
                let case = format!("cl_test_model_{}_{n}", std::process::id());
                let mut c = PgConnection::establish(admin).expect("PostgreSQL reachable");
                c.batch_execute(&format!("CREATE DATABASE {case} TEMPLATE {name}"))
                    .expect("case database created");
                Store {
                    url: DatabaseUrl::Postgres(format!("{prefix}/{case}")),
                    drop_pg: Some((admin.clone(), case)),
                    file: None,
                }
            }
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.drop_pg
            && let Ok(mut c) = PgConnection::establish(admin)
        {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
        if let Some(path) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

impl Drop for Template {
    fn drop(&mut self) {
        if let Template::Postgres { admin, name, .. } = self
            && let Ok(mut c) = PgConnection::establish(admin)
        {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}
