//! `provision init DIR`: a new project with the shipped roles and inventories.

use crate::ops::{self, InitOptions};
use crate::report::{Format, Reporter};
use std::path::PathBuf;

pub const HELP: &str = "Example:
  provision init shop --app shop      a project in ./shop for the app `shop`

The roles are the ones this binary was built with; the inventories have the stack's shape
with placeholder addresses. DIR must not exist or be empty: nothing else is ever touched.";

#[derive(clap::Args, Debug, Clone)]
pub struct InitArgs {
    /// The new project's directory
    pub dir: PathBuf,
    /// The app's name (directories, the database, the secrets' environment variables)
    #[arg(long, default_value = "app")]
    pub app: String,
    /// Output format: text for people, or JSON for programs
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

pub fn run(a: InitArgs) -> i32 {
    let reporter = Reporter::new(a.format, 0);
    reporter.conclude("init", ops::init(&InitOptions { dir: a.dir, app: a.app }))
}
