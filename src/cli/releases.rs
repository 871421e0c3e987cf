//! `provision releases`: every host's releases.

use crate::flags::Hosts;
use crate::ops;

pub const HELP: &str = "Example:
  provision releases inventories/staging.yml    every host's releases; * marks current";

#[derive(clap::Args, Debug, Clone)]
pub struct ReleasesArgs {
    #[command(flatten)]
    pub hosts: Hosts,
}

pub fn run(a: ReleasesArgs) -> i32 {
    let reporter = a.hosts.options.reporter();
    reporter.conclude("releases", super::block_on(ops::releases(&a.hosts.selection(), a.hosts.options.forks)).and_then(|r| r))
}
