//! `provision completions SHELL`: the shell completion script, generated from the same clap
//! definitions the parser uses, so it never drifts from them.

use crate::report::{Format, Reporter};
use clap::CommandFactory;

pub const HELP: &str = "Examples:
  provision completions bash > /etc/bash_completion.d/provision
  provision completions zsh > \"${fpath[1]}/_provision\"
  provision completions fish > ~/.config/fish/completions/provision.fish
  provision man > /usr/local/share/man/man1/provision.1";

#[derive(clap::Args, Debug, Clone)]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(a: CompletionsArgs) -> i32 {
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut super::Cli::command(), "provision", &mut buf);
    Reporter::new(Format::Human, 0).document(&buf);
    crate::report::exit::OK
}
