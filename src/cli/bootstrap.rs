//! `provision bootstrap`: fresh servers from "root with a key" to ready.

use crate::flags::Hosts;
use crate::ops::{self, BootstrapOptions};
use std::sync::Arc;

pub const HELP: &str = "Examples:\n  provision bootstrap inventories/production.yml --limit web3\n  provision bootstrap --initial-user debian   # a cloud image's sudo user\n\nNew host keys are recorded in the inventory's known_hosts (trust on first use); a changed\nkey is always refused. A second bootstrap changes nothing. Later runs connect as `user:`.";

#[derive(clap::Args, Debug, Clone)]
pub struct BootstrapArgs {
    #[command(flatten)]
    pub hosts: Hosts,
    /// The user to log in as on a fresh server [default: the inventory's ssh.initial_user, else root]
    #[arg(long)]
    pub initial_user: Option<String>,
}

pub fn run(a: BootstrapArgs) -> i32 {
    let reporter = Arc::new(a.hosts.options.reporter());
    let opts = BootstrapOptions { selection: a.hosts.selection(), initial_user: a.initial_user, forks: a.hosts.options.forks };
    reporter.conclude_run(super::block_on(ops::bootstrap(&opts, reporter.clone())), false)
}
