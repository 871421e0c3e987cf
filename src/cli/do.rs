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
  provision do mysql:restore flipper_staging-20250101T030000Z.sql.gz scratch

Arguments after ROLE:VERB are the action's own (`provision tasks` shows them); each is
checked against the grammar the action declares before anything connects.

The action runs on every host with that role, as its `user` (default: the deploy user), so
privileged steps go through the sudoers rules the role installs. `provision tasks` lists
the actions.

Exit status: 0 when it succeeded on every host, 1 otherwise.";

#[derive(clap::Args, Debug, Clone)]
pub struct DoArgs {
    /// [INVENTORY] ROLE:VERB [ARG...] (the inventory defaults to $PROVISION_INVENTORY, else inventories/staging.yml)
    #[arg(value_name = "ARGS", num_args = 1.., required = true)]
    pub args: Vec<String>,
    #[command(flatten)]
    pub options: HostOptions,
}

pub fn run(a: DoArgs) -> i32 {
    let reporter = Arc::new(a.options.reporter());
    let (inventory, spec, args) = split_args(&a.args);
    let opts = DoOptions { selection: a.options.selection(inventory), spec, args, forks: a.options.forks };
    reporter.conclude("do", super::block_on(ops::run_do(&opts, &reporter)).and_then(|r| r))
}

/// `[INVENTORY] ROLE:VERB [ARG...]`: the first word is the inventory unless it is shaped
/// like ROLE:VERB (a `:`, no `/`, not an existing file).
fn split_args(words: &[String]) -> (Option<PathBuf>, String, Vec<String>) {
    let is_spec = |w: &str| w.contains(':') && !w.contains('/') && !std::path::Path::new(w).is_file();
    match words {
        [first, rest @ ..] if is_spec(first) => (None, first.clone(), rest.to_vec()),
        [inv, spec, rest @ ..] => (Some(PathBuf::from(inv)), spec.clone(), rest.to_vec()),
        [only] => (None, only.clone(), Vec::new()),
        [] => (None, String::new(), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inventory_is_told_from_the_action_and_its_arguments() {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(split_args(&w(&["mysql:backup"])), (None, "mysql:backup".into(), vec![]));
        assert_eq!(split_args(&w(&["inv.yml", "mysql:backup"])), (Some("inv.yml".into()), "mysql:backup".into(), vec![]));
        assert_eq!(split_args(&w(&["mysql:restore", "a.sql.gz", "db"])), (None, "mysql:restore".into(), w(&["a.sql.gz", "db"])));
        assert_eq!(split_args(&w(&["inventories/x.yml", "mysql:restore", "a.sql.gz"])), (Some("inventories/x.yml".into()), "mysql:restore".into(), w(&["a.sql.gz"])));
    }
}
