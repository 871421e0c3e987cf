//! `provision rollback [--to RELEASE]`.

use crate::flags::Hosts;
use crate::ops;

pub const HELP: &str = "Examples:
  provision rollback inventories/staging.yml       back to the release before current
  provision rollback inventories/staging.yml --to 20261122093000

Exit status: 0 rolled back and healthy, 1 otherwise.";

#[derive(clap::Args, Debug, Clone)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub hosts: Hosts,
    /// The release to return to [default: the one before current]
    #[arg(long, value_name = "RELEASE")]
    pub to: Option<String>,
}

pub fn run(a: RollbackArgs) -> i32 {
    let reporter = a.hosts.options.reporter();
    let result = super::block_on(ops::rollback(&a.hosts.selection(), a.to.as_deref(), a.hosts.options.forks, &reporter));
    reporter.conclude("rollback", result.and_then(|r| r))
}
