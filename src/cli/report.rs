//! `provision report merge [--inventory INV] FILE...`: the shards' JSON reports as one.

use crate::ops::{self, MergeOptions};
use crate::report::{exit, Reporter};
use std::path::PathBuf;

pub const HELP: &str = "Example (four controllers, one shard each, then one report):
  provision inventories/production.yml --shard 1/4 --format json > shard-1.json    # ... to 4/4
  provision report merge --inventory inventories/production.yml shard-*.json > run.json

The merged report is the one the unsharded run would have printed (hosts in the inventory's
order with --inventory); its exit status too: 1 when a host failed, 2 for a check with
changes, else 0. See docs/scale.md.";

#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum ReportCommand {
    /// Merge the JSON reports of a run's shards (`--shard K/N --format json`) into one
    #[command(after_help = HELP)]
    Merge(MergeArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct MergeArgs {
    /// The shards' JSON reports
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Order the hosts as this inventory lists them
    #[arg(long)]
    pub inventory: Option<PathBuf>,
}

pub fn run(a: ReportArgs) -> i32 {
    let ReportCommand::Merge(m) = a.command;
    let reporter = Reporter::new(Default::default(), 0);
    match ops::merge(&MergeOptions { files: m.files, inventory: m.inventory }) {
        Ok(merged) => {
            let mut text = serde_json::to_string_pretty(&merged.report).unwrap_or_default();
            text.push('\n');
            reporter.document(text.as_bytes());
            match (merged.failed, merged.pending) {
                (true, _) => exit::FAILED,
                (false, true) => exit::CHANGES_PENDING,
                (false, false) => exit::OK,
            }
        }
        Err(e) => {
            match e.downcast_ref::<crate::error::Diagnostics>() {
                Some(d) => reporter.error(&format!("{d}")),
                None => reporter.error(&format!("error: {e:#}")),
            }
            exit::FAILED
        }
    }
}
