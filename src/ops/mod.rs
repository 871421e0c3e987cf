//! Operations: each verb is one call here. An operation loads the project
//! ([`crate::project`]), chains the pipeline stages (inventory → variables → roles →
//! resources → probe → plan → apply) or the release steps on every host through the one
//! runner ([`crate::runner`]), tells the reporter what happens, and returns its report; it
//! parses no arguments and prints nothing itself.

mod bootstrap;
mod converge;
mod db_copy;
mod do_action;
mod init;
mod release;
mod releases;
mod rollback;
mod report_merge;
mod roles_update;

pub use crate::project::Selection;
pub use bootstrap::{bootstrap, BootstrapOptions};
pub use converge::{run, validate, RunOptions};
pub use db_copy::{db_copy, DbCopyOptions, DbCopyReport};
pub use init::{init, InitOptions, InitReport};
pub use do_action::{run_do, DoOptions, DoReport, DoResult};
pub use release::{release, ReleaseOptions, ReleaseReport};
pub use releases::{releases, HostReleases, ReleasesReport};
pub use rollback::{rollback, RollbackReport};
pub use report_merge::{merge, MergeOptions, Merged};
pub use roles_update::{roles_update, RolesUpdateOptions, RolesUpdateReport};

use crate::report::{HostReport, HostStatus, RunReport, Summary, JSON_FORMAT_VERSION};

/// The run's report from its hosts' reports.
fn summarize(mode: &'static str, hosts: Vec<HostReport>) -> RunReport {
    let summary = Summary {
        hosts: hosts.len(),
        ok: hosts.iter().filter(|h| h.status == HostStatus::Ok).count(),
        changed: hosts.iter().filter(|h| h.status == HostStatus::Changed).count(),
        failed: hosts.iter().filter(|h| h.status == HostStatus::Failed).count(),
        changes: hosts.iter().map(|h| h.changes.iter().filter(|c| c.status != "not run").count()).sum(),
    };
    RunReport { format_version: JSON_FORMAT_VERSION, mode, hosts, summary }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "controller".into())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

