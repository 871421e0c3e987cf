//! Flags shared by several verbs, defined once (as cargo's command prelude does), so that
//! they read and behave the same everywhere. A leaf module: clap only.

/// Which hosts and how many at once: shared by the commands that act on deployed hosts
/// (`release`, `rollback`, `releases`, `do`).
#[derive(clap::Args, Debug, Clone)]
pub struct HostOptions {
    /// Only these hosts or groups (repeatable)
    #[arg(long = "limit", value_name = "HOST|GROUP")]
    pub limits: Vec<String>,
    /// Set a variable, overriding all others (repeatable)
    #[arg(short = 'e', value_name = "KEY=VALUE")]
    pub extra_vars: Vec<String>,
    /// How many hosts to work on at once
    #[arg(long, default_value_t = 20)]
    pub forks: usize,
    /// Print every step per host and the number of round trips
    #[arg(short, long)]
    pub verbose: bool,
}

