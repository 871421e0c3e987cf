//! `provision roles update [DIR] [--check]`: the shipped roles, refreshed in a project.

use crate::ops::{self, RolesUpdateOptions};
use crate::report::{Format, Reporter};
use std::path::PathBuf;

pub const HELP: &str = "Example:
  provision roles update --check     what would change in ./roles, writing nothing
  provision roles update             bring ./roles to this binary's versions

A file you have not edited since `provision init` (or the last update) is replaced; a file
you edited is kept, and the new version is written beside it as FILE.shipped; a file you
deleted stays deleted. roles/.shipped records what was shipped.";

#[derive(clap::Args, Debug, Clone)]
pub struct RolesArgs {
    #[command(subcommand)]
    pub command: RolesCommand,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum RolesCommand {
    /// Bring the project's copies of the shipped roles to this binary's versions, keeping your edits
    #[command(after_help = HELP)]
    Update(UpdateArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct UpdateArgs {
    /// The project's directory
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Say what would change and write nothing
    #[arg(long)]
    pub check: bool,
    /// Output format: text for people, or JSON for programs
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

pub fn run(a: RolesArgs) -> i32 {
    match a.command {
        RolesCommand::Update(u) => Reporter::new(u.format, 0).conclude("roles update", ops::roles_update(&RolesUpdateOptions { dir: u.dir, check: u.check })),
    }
}
