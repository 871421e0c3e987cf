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
}

pub fn run(a: ConvergeArgs) -> i32 {
    let reporter = Arc::new(a.hosts.options.reporter());
    let opts = RunOptions { selection: a.hosts.selection(), check: a.check, forks: a.hosts.options.forks };
    reporter.conclude_run(super::block_on(ops::run(&opts, reporter.clone())), a.check)
}
