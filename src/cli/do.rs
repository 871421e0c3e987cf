//! `provision do [INVENTORY] ROLE:VERB`: a role's action on the hosts with that role.

use crate::flags::HostOptions;
use crate::ops::{self, DoOptions};
use std::path::PathBuf;
use std::sync::Arc;

pub const HELP: &str = "Examples:
  provision do inventories/staging.yml sidekiq:quiet
  provision do sidekiq:restart --limit worker1
  provision do puma:phased-restart
  provision do inventories/staging.yml mysql:backup     (runs on the replica only)

The action runs on every host with that role, as its `user` (default: the deploy user), so
privileged steps go through the sudoers rules the role installs. `provision tasks` lists
the actions.

Exit status: 0 when it succeeded on every host, 1 otherwise.";

#[derive(clap::Args, Debug, Clone)]
pub struct DoArgs {
    /// [INVENTORY] ROLE:VERB (the inventory defaults to $PROVISION_INVENTORY, else inventories/staging.yml)
    #[arg(value_name = "ARGS", num_args = 1..=2, required = true)]
    pub args: Vec<String>,
    #[command(flatten)]
    pub options: HostOptions,
}

pub fn run(a: DoArgs) -> i32 {
    let reporter = Arc::new(a.options.reporter());
    // clap gives one or two arguments.
    let (inventory, spec) = match a.args.as_slice() {
        [inv, spec] => (Some(PathBuf::from(inv)), spec.clone()),
        other => (None, other.first().cloned().unwrap_or_default()),
    };
    let opts = DoOptions { selection: a.options.selection(inventory), spec, forks: a.options.forks };
    reporter.conclude("do", super::block_on(ops::run_do(&opts, &reporter)).and_then(|r| r))
}
