//! `provision db-copy --from INVENTORY --to INVENTORY`.

use crate::ops::{self, DbCopyOptions};
use crate::report::Format;
use std::path::PathBuf;

pub const HELP: &str = "Example:\n  provision db-copy --from inventories/production.yml --to inventories/staging.yml\n\nThe database is the `app_db_name` variable of each side's mysql host. The target's\ntables are replaced. The dump is never written to this machine's disk.";

#[derive(clap::Args, Debug, Clone)]
pub struct DbCopyArgs {
    /// The inventory to copy from
    #[arg(long)]
    pub from: PathBuf,
    /// The inventory to copy into (refused when its stage is production)
    #[arg(long)]
    pub to: PathBuf,
    /// Output format: text for people, or JSON for programs
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

pub fn run(a: DbCopyArgs) -> i32 {
    let reporter = crate::report::Reporter::new(a.format, 0);
    let opts = DbCopyOptions { from: a.from, to: a.to };
    reporter.conclude("db-copy", super::block_on(ops::db_copy(&opts)).and_then(|r| r))
}
