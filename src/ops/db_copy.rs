//! `provision db-copy`: staging data from production. A `mysqldump --single-transaction`
//! on the source's replica (its primary when it has none) is streamed through this
//! process's memory into the target's primary: the dump never lands on the controller's
//! disk. A target whose stage is production is refused before anything connects.

use crate::error::{Diagnostic, Diagnostics};
use crate::inventory::{Host, Inventory};
use crate::project::{Project, Selection};
use crate::report::VerbReport;
use crate::runner::control_dir;
use crate::sh;
use crate::transport::Connection;
use anyhow::Context;
use serde::Serialize;
use std::path::PathBuf;

/// The role whose hosts hold the database.
const DB_ROLE: &str = "mysql";
/// The variable that names the app's database on a host.
const DB_NAME_VAR: &str = "app_db_name";

/// Options of `provision db-copy`.
#[derive(Debug, Clone)]
pub struct DbCopyOptions {
    pub from: PathBuf,
    pub to: PathBuf,
}

/// What was copied.
#[derive(Debug, Clone, Serialize)]
pub struct DbCopyReport {
    pub source: String,
    pub source_db: String,
    pub target: String,
    pub target_db: String,
    pub bytes: u64,
}

/// One side of the copy: its inventory, host and database name.
struct Side {
    inventory: Inventory,
    host: Host,
    database: String,
}

fn side(path: &std::path::Path, prefer_replica: bool) -> Result<Side, Diagnostics> {
    let project = Project::load(&Selection { inventory: path.to_path_buf(), ..Default::default() })?;
    let db_hosts = project.inventory.group_members(DB_ROLE);
    let primary = db_hosts.iter().find(|h| h.primary).or(db_hosts.first()).copied();
    let chosen = if prefer_replica { db_hosts.iter().find(|h| !h.primary).copied().or(primary) } else { primary };
    let host = chosen
        .ok_or_else(|| Diagnostic::new(format!("{} has no host with the `{DB_ROLE}` role", path.display())).help("db-copy copies between the mysql hosts of two inventories"))?
        .clone();
    let (vars, _) = project.host_vars(&host)?;
    let database = vars
        .get(DB_NAME_VAR)
        .and_then(crate::yaml::scalar_string)
        .ok_or_else(|| Diagnostic::new(format!("host `{}` of {} has no `{DB_NAME_VAR}` variable naming its database", host.name, path.display())))?;
    Ok(Side { inventory: project.inventory, host, database })
}

/// Checks both inventories and refuses a production target; connects nowhere.
fn plan(opts: &DbCopyOptions) -> Result<(Side, Side), Diagnostics> {
    let target = side(&opts.to, false)?;
    if target.inventory.stage == "production" {
        return Err(Diagnostic::new(format!("refusing to copy into {}: its stage is production", opts.to.display()))
            .help("db-copy overwrites the target's database; it only writes to non-production stages")
            .into());
    }
    let source = side(&opts.from, true)?;
    if source.host.address == target.host.address && source.database == target.database {
        return Err(Diagnostic::new("the source and the target are the same database on the same host").into());
    }
    for s in [&source, &target] {
        s.inventory.preflight([&s.host], [])?;
    }
    Ok((source, target))
}

/// Runs the copy.
pub async fn db_copy(opts: &DbCopyOptions) -> anyhow::Result<DbCopyReport> {
    let (source, target) = plan(opts).map_err(|e| anyhow::anyhow!("{e}\n\nnothing was copied"))?;
    {
        let dir = control_dir()?;
        let src = Connection::connect(&source.host, &source.inventory.ssh, &dir.path().join("src"), false).await?;
        let dst = Connection::connect(&target.host, &target.inventory.ssh, &dir.path().join("dst"), false).await?;
        let dump = sh!("mysqldump --single-transaction --quick --routines --triggers -- {}", source.database);
        let load = sh!("mysql -- {}", target.database);
        let copied = src.stream_to(&dump, &dst, &load).await.context("copying the database");
        src.close().await;
        dst.close().await;
        Ok(DbCopyReport {
            source: source.host.name.clone(),
            source_db: source.database.clone(),
            target: target.host.name.clone(),
            target_db: target.database.clone(),
            bytes: copied?,
        })
    }
}

impl VerbReport for DbCopyReport {
    fn ok(&self) -> bool {
        true
    }
    fn closing(&self) -> Vec<(bool, String)> {
        vec![(false, format!("copied {} ({}) into {} ({}): {} bytes streamed", self.source_db, self.source, self.target_db, self.target, self.bytes))]
    }
}
