//! `provision validate`: the inventory, roles and templates checked without connecting.

use crate::report::{Format, Reporter};
use std::path::PathBuf;

pub const HELP: &str = "Example:\n  provision validate inventories/production.yml\n\nExit status: 0 when valid, 1 with every error listed.";

#[derive(clap::Args, Debug, Clone)]
pub struct ValidateArgs {
    /// The inventory file [default: $PROVISION_INVENTORY, else inventories/staging.yml]
    pub inventory: Option<PathBuf>,
}

pub fn run(a: ValidateArgs) -> i32 {
    let reporter = Reporter::new(Format::Human, 0);
    let path = crate::inventory::inventory_path(a.inventory);
    match crate::ops::validate(&path) {
        Ok(n) => {
            reporter.event("info", None, &format!("{}: valid ({n} hosts, every template rendered)", path.display()));
            0
        }
        Err(errors) => {
            reporter.input_errors(&errors, &format!("{} error(s) in {}", errors.len(), path.display()));
            1
        }
    }
}
