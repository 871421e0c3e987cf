//! `provision [INVENTORY] [--check]`: converge the selected hosts.

use crate::flags::Hosts;
use crate::ops::{self, RunOptions};
use std::sync::Arc;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConvergeArgs {
    #[command(flatten)]
    pub hosts: Hosts,
    /// Show the plan with diffs and change nothing
    #[arg(long)]
    pub check: bool,
    /// Only share K of N of the selected hosts (by a hash of the host's name), so that N
    /// controllers can split a large inventory (each host lands in exactly one shard)
    #[arg(long, value_name = "K/N")]
    pub shard: Option<crate::project::Shard>,
}

pub fn run(a: ConvergeArgs) -> i32 {
    let reporter = Arc::new(a.hosts.options.reporter());
    let selection = crate::project::Selection { shard: a.shard, ..a.hosts.selection() };
    let opts = RunOptions { selection, check: a.check, forks: a.hosts.options.forks };
    reporter.conclude_run(super::block_on(ops::run(&opts, reporter.clone())), a.check)
}
