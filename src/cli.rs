//! The command line: parses arguments and makes one call into [`crate::ops`].

use crate::ops::{self, RunOptions, Selection};
use crate::report::{Format, Reporter};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

const EXAMPLES: &str = "Examples:
  provision inventories/staging.yml --check     show what would change on every host, change nothing
  provision inventories/staging.yml             apply, printing each change as it is made
  provision --role sidekiq                      converge only the sidekiq role (default inventory)
  provision inventories/staging.yml --limit web1 -e nginx_worker_connections=2048
  provision validate inventories/production.yml check inventory, roles and templates without connecting

Exit status: 0 success (with --check: nothing would change), 2 with --check when something
would change, 1 on any error.";

/// Provision Debian/Ubuntu servers from an inventory and roles, in one SSH round trip per host.
#[derive(Parser, Debug)]
#[command(name = "provision", version, after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Which hosts and roles, shared by the commands that connect.
#[derive(Args, Debug, Clone, Default)]
pub struct Target {
    /// The inventory file [default: $PROVISION_INVENTORY, else inventories/staging.yml]
    pub inventory: Option<PathBuf>,
    /// Only these hosts or groups (repeatable)
    #[arg(long = "limit", value_name = "HOST|GROUP")]
    pub limits: Vec<String>,
    /// Only these roles, on the hosts that have them (repeatable)
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    /// Set a variable, overriding all others (repeatable)
    #[arg(short = 'e', value_name = "KEY=VALUE")]
    pub extra_vars: Vec<String>,
}

impl Target {
    /// The inventory: the argument, `$PROVISION_INVENTORY`, or `inventories/staging.yml`.
    /// Never production by default.
    pub fn inventory_path(&self) -> PathBuf {
        crate::inventory::inventory_path(self.inventory.clone())
    }

    pub fn selection(&self) -> Selection {
        Selection { inventory: self.inventory_path(), roles: self.roles.clone(), limits: self.limits.clone(), extra_vars: self.extra_vars.clone() }
    }
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: Target,
    /// Show the plan with diffs and change nothing
    #[arg(long)]
    pub check: bool,
    /// How many hosts to work on at once
    #[arg(long, default_value_t = 20)]
    pub forks: usize,
    /// Output format
    #[arg(long, value_enum, default_value = "human")]
    pub format: Option<Format>,
    /// Print timings per phase and the number of remote round trips per host
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check the inventory and roles and render every template for every host, without connecting
    #[command(after_help = "Example:\n  provision validate inventories/production.yml\n\nExit status: 0 when valid, 1 with every error listed.")]
    Validate {
        /// The inventory file [default: $PROVISION_INVENTORY, else inventories/staging.yml]
        inventory: Option<PathBuf>,
    },
    /// Take fresh servers from "root with a key" to ready: admin and deploy users with their
    /// keys, the admin's sudo, the app tree; then, after a fresh admin login with `sudo -n
    /// true` worked, no root or password login (checked by `sshd -t` before the reload)
    #[command(after_help = "Examples:\n  provision bootstrap inventories/production.yml --limit web3\n  provision bootstrap --initial-user debian   # a cloud image's sudo user\n\nNew host keys are recorded in the inventory's known_hosts (trust on first use); a changed\nkey is always refused. A second bootstrap changes nothing. Later runs connect as `user:`.")]
    Bootstrap {
        #[command(flatten)]
        target: Target,
        /// The user to log in as on a fresh server [default: the inventory's ssh.initial_user, else root]
        #[arg(long)]
        initial_user: Option<String>,
        /// Output format
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        #[arg(short, long, action = clap::ArgAction::Count)]
        verbose: u8,
    },
    /// Copy the app's database from one inventory's replica (or primary) into another's
    /// primary, streamed through memory; never into a production stage
    #[command(name = "db-copy", after_help = "Example:\n  provision db-copy --from inventories/production.yml --to inventories/staging.yml\n\nThe database is the `app_db_name` variable of each side's mysql host. The target's\ntables are replaced. The dump is never written to this machine's disk.")]
    DbCopy {
        /// The inventory to copy from
        #[arg(long)]
        from: PathBuf,
        /// The inventory to copy into (refused when its stage is production)
        #[arg(long)]
        to: PathBuf,
    },
    /// Release the app: lock, upload, unpack, link, migrate, switch, restart, health check
    #[command(after_help = crate::release::RELEASE_HELP)]
    Release(crate::release::ReleaseArgs),
    /// Switch every host back to an earlier release, restart and health-check
    #[command(after_help = crate::release::ROLLBACK_HELP)]
    Rollback(crate::release::RollbackArgs),
    /// List every host's releases, marking the current one
    #[command(after_help = crate::release::RELEASES_HELP)]
    Releases(crate::release::DeployTarget),
    /// Run a role's action (ROLE:VERB) on the hosts with that role, as the deploy user
    #[command(name = "do", after_help = crate::actions::DO_HELP)]
    Do(crate::actions::DoArgs),
    /// List every role's actions with their descriptions
    #[command(after_help = crate::actions::TASKS_HELP)]
    Tasks(crate::actions::TasksArgs),
}

/// Runs the command line and returns the exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Validate { inventory }) => {
            let target = Target { inventory, ..Default::default() };
            let path = target.inventory_path();
            match ops::validate(&path) {
                Ok(n) => {
                    println!("{}: valid ({n} hosts, every template rendered)", path.display());
                    0
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    eprintln!("\n{} error(s) in {}", errors.len(), path.display());
                    1
                }
            }
        }
        Some(Command::Bootstrap { target, initial_user, format, verbose }) => {
            let reporter = Arc::new(Reporter::new(format, verbose));
            let opts = ops::BootstrapOptions { selection: target.selection(), initial_user, forks: 20 };
            finish(ops_runtime().map(|rt| rt.block_on(ops::bootstrap(&opts, reporter.clone()))), &reporter, false)
        }
        Some(Command::DbCopy { from, to }) => {
            let opts = crate::dbcopy::DbCopyOptions { from, to };
            match ops_runtime().map(|rt| rt.block_on(crate::dbcopy::db_copy(&opts))) {
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
                Ok(Err(errors)) => {
                    eprintln!("{errors}\n\nnothing was copied");
                    1
                }
                Ok(Ok(Err(e))) => {
                    eprintln!("error: {e:#}");
                    1
                }
                Ok(Ok(Ok(r))) => {
                    println!("copied {} ({}) into {} ({}): {} bytes streamed", r.source_db, r.source, r.target_db, r.target, r.bytes);
                    0
                }
            }
        }
        Some(Command::Release(a)) => crate::release::cli_release(a),
        Some(Command::Rollback(a)) => crate::release::cli_rollback(a),
        Some(Command::Releases(a)) => crate::release::cli_releases(a),
        Some(Command::Do(a)) => crate::actions::cli_do(a),
        Some(Command::Tasks(a)) => crate::actions::cli_tasks(a),
        None => run(cli.run),
    }
}

fn ops_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Prints the report and turns it into the exit status.
fn finish(result: Result<Result<crate::report::RunReport, crate::error::Diagnostics>, String>, reporter: &Reporter, check: bool) -> i32 {
    match result {
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
        Ok(Ok(report)) => {
            reporter.finish(&report);
            if report.summary.failed > 0 {
                1
            } else if check && report.summary.changes > 0 {
                2
            } else {
                0
            }
        }
        Ok(Err(errors)) => {
            eprintln!("{errors}");
            eprintln!("\nnothing was changed: {} error(s) found before connecting", errors.len());
            1
        }
    }
}

fn run(args: RunArgs) -> i32 {
    let format = args.format.unwrap_or(Format::Human);
    let reporter = Arc::new(Reporter::new(format, args.verbose));
    let opts = RunOptions { selection: args.target.selection(), check: args.check, forks: args.forks };
    finish(ops_runtime().map(|rt| rt.block_on(ops::run(&opts, reporter.clone()))), &reporter, args.check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn inventory_and_flags_parse() {
        let cli = Cli::try_parse_from(["provision", "inv.yml", "--check", "--role", "a", "--role", "b", "--limit", "web1", "-e", "x=1", "-v"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.target.roles, vec!["a", "b"]);
        assert!(cli.run.check);
        let cli = Cli::try_parse_from(["provision", "validate", "inv.yml"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Validate { .. })));
    }
}
