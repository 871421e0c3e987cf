//! Live progress on a terminal: one line per host (its phase, and how many changes it has
//! made of how many), redrawn in place under the lines the run prints. Only when stdout is
//! a terminal and the output is for people; into a pipe or a file nothing here is drawn,
//! and the run prints the same plain lines it always did.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub struct Live {
    multi: MultiProgress,
    hosts: Mutex<HashMap<String, ProgressBar>>,
    cleared: AtomicBool,
}

impl Live {
    /// A live display drawn on stdout (the reporter makes one when stdout is a terminal).
    pub fn on_stdout() -> Live {
        Live { multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()), hosts: Mutex::new(HashMap::new()), cleared: AtomicBool::new(false) }
    }

    /// Sets `host`'s line to `text`, adding the line on first use.
    pub fn host(&self, host: &str, text: &str) {
        if self.cleared.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut hosts) = self.hosts.lock() else { return };
        let bar = hosts.entry(host.to_string()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        bar.set_message(format!("{host}: {text}"));
    }

    /// Prints `text` (whole lines) above the live lines; false when there are none (the
    /// caller prints it as usual then).
    pub fn println(&self, text: &str) -> bool {
        // Before the first host line (and after the last) there is nothing to print around.
        if self.cleared.load(Ordering::SeqCst) || self.hosts.lock().map(|h| h.is_empty()).unwrap_or(true) {
            return false;
        }
        for line in text.strip_suffix('\n').unwrap_or(text).split('\n') {
            let _ = self.multi.println(line);
        }
        true
    }

    /// Runs `f` (which writes elsewhere, such as stderr) with the live lines taken away.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    /// Removes the live lines: the run's summary follows.
    pub fn clear(&self) {
        self.cleared.store(true, Ordering::SeqCst);
        if let Ok(mut hosts) = self.hosts.lock() {
            for (_, bar) in hosts.drain() {
                bar.finish_and_clear();
            }
        }
        let _ = self.multi.clear();
    }
}
