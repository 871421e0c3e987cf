//! `provision tasks`: every role's actions, like `cap -T`.

use crate::project::{Project, Selection};
use crate::report::{Format, Reporter};
use std::path::PathBuf;

pub const HELP: &str = "Example:
  provision tasks                  every role's actions with their descriptions (like cap -T)";

#[derive(clap::Args, Debug, Clone)]
pub struct TasksArgs {
    /// The inventory file, to find the roles beside it [default: $PROVISION_INVENTORY, else inventories/staging.yml]
    pub inventory: Option<PathBuf>,
}

pub fn run(a: TasksArgs) -> i32 {
    let reporter = Reporter::new(Format::Human, 0);
    let selection = Selection { inventory: crate::inventory::inventory_path(a.inventory), ..Default::default() };
    match Project::load(&selection).and_then(|p| crate::actions::tasks_listing(&p.roles)) {
        Ok(listing) => {
            reporter.event("info", None, listing.trim_end());
            0
        }
        Err(e) => {
            reporter.input_errors(&e, "nothing was listed");
            1
        }
    }
}
