//! The command line: each verb's arguments live in `cli/<verb>.rs`, which makes one call
//! into [`crate::ops`] and hands the report to the one [`crate::report::Reporter`].

mod bootstrap;
mod completions;
mod converge;
mod db_copy;
#[path = "do.rs"]
mod do_action;
mod init;
mod man;
mod release;
mod releases;
mod report;
mod roles;
mod rollback;
mod tasks;
mod validate;

use crate::report::exit;
use clap::{Parser, Subcommand};

const EXAMPLES: &str = "Examples:
  provision inventories/staging.yml --check     show what would change on every host, change nothing
  provision inventories/staging.yml             apply, printing each change as it is made
  provision --role sidekiq                      converge only the sidekiq role (default inventory)
  provision inventories/staging.yml --limit web1 -e nginx_worker_connections=2048
  provision validate inventories/production.yml check inventory, roles and templates without connecting

Exit status: 0 success (with --check: nothing would change), 2 with --check when something
would change, 1 on any error, 64 when the command line is wrong (unknown flag, mistyped verb).";

/// Provision Debian/Ubuntu servers from an inventory and roles, in one SSH round trip per host.
#[derive(Parser, Debug)]
#[command(name = "provision", version, after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: converge::ConvergeArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start a new project: the shipped roles, a staging and a production inventory
    #[command(after_help = init::HELP)]
    Init(init::InitArgs),
    /// Check the inventory and roles and render every template for every host, without connecting
    #[command(after_help = validate::HELP)]
    Validate(validate::ValidateArgs),
    /// Take fresh servers from "root with a key" to ready: admin and deploy users with their
    /// keys, the admin's sudo, the app tree; then, after a fresh admin login with `sudo -n
    /// true` worked, no root or password login (checked by `sshd -t` before the reload)
    #[command(after_help = bootstrap::HELP)]
    Bootstrap(bootstrap::BootstrapArgs),
    /// Copy the app's database from one inventory's replica (or primary) into another's
    /// primary, streamed through memory; never into a production stage
    #[command(name = "db-copy", after_help = db_copy::HELP)]
    DbCopy(db_copy::DbCopyArgs),
    /// Release the app: lock, upload, unpack, link, migrate, health gate, switch, restart, health check
    #[command(after_help = release::HELP)]
    Release(release::ReleaseArgs),
    /// Switch every host back to an earlier release, restart and health-check
    #[command(after_help = rollback::HELP)]
    Rollback(rollback::RollbackArgs),
    /// List every host's releases, marking the current one
    #[command(after_help = releases::HELP)]
    Releases(releases::ReleasesArgs),
    /// Run a role's action (ROLE:VERB) on the hosts with that role, as the deploy user
    #[command(name = "do", after_help = do_action::HELP)]
    Do(do_action::DoArgs),
    /// Merge the JSON reports of a sharded run (`report merge`)
    Report(report::ReportArgs),
    /// Refresh the shipped roles in a project (`roles update`), keeping your edits
    Roles(roles::RolesArgs),
    /// List every role's actions with their descriptions
    #[command(after_help = tasks::HELP)]
    Tasks(tasks::TasksArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell
    #[command(after_help = completions::HELP)]
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff)
    #[command(after_help = completions::HELP)]
    Man,
}

/// Runs the command line and returns the exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version are answers, not errors.
            let _ = e.print();
            return exit::OK;
        }
        Err(e) => {
            // `provision relase --dir app`: clap sees an inventory and stray arguments; the
            // misspelt verb is the better answer.
            match std::env::args_os().nth(1).and_then(|first| mistyped_verb(Some(std::path::Path::new(&first)))) {
                Some(typo) => crate::report::Reporter::new(Default::default(), 0).error(&typo),
                None => {
                    let _ = e.print();
                }
            }
            return exit::USAGE;
        }
    };
    if let Some(typo) = cli.command.is_none().then(|| mistyped_verb(cli.run.hosts.inventory.as_deref())).flatten() {
        crate::report::Reporter::new(cli.run.hosts.options.format, 0).error(&typo);
        return exit::USAGE;
    }
    match cli.command {
        None => converge::run(cli.run),
        Some(Command::Init(a)) => init::run(a),
        Some(Command::Validate(a)) => validate::run(a),
        Some(Command::Bootstrap(a)) => bootstrap::run(a),
        Some(Command::DbCopy(a)) => db_copy::run(a),
        Some(Command::Release(a)) => release::run(a),
        Some(Command::Rollback(a)) => rollback::run(a),
        Some(Command::Releases(a)) => releases::run(a),
        Some(Command::Do(a)) => do_action::run(a),
        Some(Command::Tasks(a)) => tasks::run(a),
        Some(Command::Roles(a)) => roles::run(a),
        Some(Command::Report(a)) => report::run(a),
        Some(Command::Completions(a)) => completions::run(a),
        Some(Command::Man) => man::run(),
    }
}

/// `provision valdiate` reads `valdiate` as the inventory: when no such file exists and the
/// word is a verb's name misspelt, the error says which verb was meant.
fn mistyped_verb(inventory: Option<&std::path::Path>) -> Option<String> {
    let word = inventory?.to_str()?;
    if word.contains(['/', '.']) || std::path::Path::new(word).exists() {
        return None;
    }
    use clap::CommandFactory;
    let verbs: Vec<String> = Cli::command().get_subcommands().map(|c| c.get_name().to_string()).collect();
    if verbs.iter().any(|v| v == word) {
        return None; // a verb whose arguments are wrong: clap's message says which
    }
    // The start of a verb (`db` for db-copy) says more than the nearest spelling (`do`).
    let starting: Vec<&String> = verbs.iter().filter(|v| word.len() >= 2 && v.starts_with(word) && v.as_str() != word).collect();
    let meant = match starting.as_slice() {
        [one] => format!("`provision {one}`"),
        [_, _, ..] => starting.iter().map(|v| format!("`provision {v}`")).collect::<Vec<_>>().join(" or "),
        [] => {
            let (distance, verb) = verbs.iter().map(|v| (strsim::damerau_levenshtein(word, v), v)).min()?;
            if !(distance > 0 && distance <= 2 && distance < verb.len() / 2 + 1) {
                return None;
            }
            format!("`provision {verb}`")
        }
    };
    Some(format!("error: `{word}` is neither an inventory file nor a verb\n  help: did you mean {meant}? (`provision --help` lists the verbs)"))
}

/// Runs an operation to its end on a small runtime (the work is waiting on hosts).
fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    Ok(rt.block_on(f))
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
        assert_eq!(cli.run.hosts.options.roles, vec!["a", "b"]);
        assert!(cli.run.check);
        let cli = Cli::try_parse_from(["provision", "validate", "inv.yml"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Validate(_))));
    }

    #[test]
    fn verbs_parse() {
        let c = Cli::try_parse_from(["provision", "release", "inv.yml", "--dir", "app", "--revision", "r1", "--limit", "app1", "-vv", "--format", "json"]).unwrap();
        assert!(matches!(c.command, Some(Command::Release(ref a)) if a.dir.is_some() && a.hosts.options.limits == ["app1"] && a.hosts.options.verbose == 2));
        assert!(Cli::try_parse_from(["provision", "release", "inv.yml"]).is_err(), "a source is required");
        assert!(Cli::try_parse_from(["provision", "release", "--dir", "a", "--artifact", "b.tar.gz"]).is_err(), "one source");
        assert!(Cli::try_parse_from(["provision", "release", "--dir", "a", "--batch", "0"]).is_err(), "a batch of 0 hosts");
        let c = Cli::try_parse_from(["provision", "rollback", "--to", "20260101000000"]).unwrap();
        assert!(matches!(c.command, Some(Command::Rollback(ref a)) if a.to.as_deref() == Some("20260101000000")));
        let c = Cli::try_parse_from(["provision", "do", "inv.yml", "sidekiq:quiet", "--limit", "worker1"]).unwrap();
        assert!(matches!(c.command, Some(Command::Do(ref a)) if a.args == ["inv.yml", "sidekiq:quiet"]));
        let c = Cli::try_parse_from(["provision", "do", "puma:status", "-v", "--format", "json"]).unwrap();
        assert!(matches!(c.command, Some(Command::Do(ref a)) if a.args == ["puma:status"] && a.options.verbose == 1));
        assert!(matches!(Cli::try_parse_from(["provision", "tasks"]).unwrap().command, Some(Command::Tasks(_))));
        assert!(matches!(Cli::try_parse_from(["provision", "releases", "inv.yml", "--role", "puma"]).unwrap().command, Some(Command::Releases(_))));
        assert!(matches!(Cli::try_parse_from(["provision", "bootstrap", "inv.yml", "--forks", "5", "-v"]).unwrap().command, Some(Command::Bootstrap(_))));
    }
}
