//! `provision man`: the man page (roff), generated from the same clap definitions the
//! parser uses, so it never drifts from them.

use crate::report::{Format, Reporter};
use clap::CommandFactory;

pub fn run() -> i32 {
    let reporter = Reporter::new(Format::Human, 0);
    let mut buf = Vec::new();
    match clap_mangen::Man::new(super::Cli::command()).render(&mut buf) {
        Ok(()) => {
            reporter.document(&buf);
            crate::report::exit::OK
        }
        Err(e) => {
            reporter.error(&format!("error: cannot render the man page: {e}"));
            crate::report::exit::FAILED
        }
    }
}
