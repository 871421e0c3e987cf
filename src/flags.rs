//! Flags shared by the verbs, defined once (as cargo's command prelude does), so that they
//! read and behave the same everywhere: which hosts (`--limit`, `--role`, `-e`), how many
//! at once (`--forks`), and the output (`--format`, `-v`, which counts everywhere, `--color`).

use crate::project::Selection;
use crate::report::{ColorWhen, Format, Reporter};
use std::path::PathBuf;

/// Which hosts, how many at once, and the output: shared by every verb that connects.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct HostOptions {
    /// Only these hosts or groups (repeatable)
    #[arg(long = "limit", value_name = "HOST|GROUP")]
    pub limits: Vec<String>,
    /// Only hosts with these roles (repeatable); converge applies only these roles
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    /// Set a variable, overriding all others (repeatable)
    #[arg(short = 'e', value_name = "KEY=VALUE")]
    pub extra_vars: Vec<String>,
    /// How many hosts to work on at once
    #[arg(long, default_value_t = 20)]
    pub forks: usize,
    /// Output format: text for people, or JSON for programs
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Show more: every step per host, timings, round trips (repeatable)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// When to colour the output: auto (a terminal, unless NO_COLOR is set; CLICOLOR_FORCE
    /// forces it), always or never
    #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
    pub color: ColorWhen,
    /// Keep each host's SSH connection open this many seconds after the run, for the next
    /// one (overrides the inventory's `ssh.persist`; 0 closes them at the end)
    #[arg(long, value_name = "SECONDS")]
    pub persist: Option<u64>,
}

impl HostOptions {
    /// The selection, with the inventory given (else `$PROVISION_INVENTORY`, else
    /// `inventories/staging.yml`: never production by default).
    pub fn selection(&self, inventory: Option<PathBuf>) -> Selection {
        Selection {
            inventory: crate::inventory::inventory_path(inventory),
            roles: self.roles.clone(),
            limits: self.limits.clone(),
            extra_vars: self.extra_vars.clone(),
            shard: None,
            persist: self.persist,
        }
    }

    pub fn reporter(&self) -> Reporter {
        Reporter::with_color(self.format, self.verbose, self.color)
    }
}

/// An inventory and the shared host flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Hosts {
    /// The inventory file [default: $PROVISION_INVENTORY, else inventories/staging.yml]
    pub inventory: Option<PathBuf>,
    #[command(flatten)]
    pub options: HostOptions,
}

impl Hosts {
    pub fn selection(&self) -> Selection {
        self.options.selection(self.inventory.clone())
    }
}
