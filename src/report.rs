//! Report: the one reporter of every verb, as text for people or as JSON for programs.
//! Converge prints its changes as they happen and, with `--format json`, one report
//! object. The verbs that act on deployed hosts (`release`, `rollback`, `releases`, `do`)
//! print events as they happen: a line for people, or one JSON object per line
//! (`{"event": "phase"|"host"|"info"|"stderr"|"error", "host": ..., "text": ...}`), closed
//! by one `{"event": "summary", "verb": ..., "ok": ..., "exit": ...}` with the verb's report.
//! Every string passes through the host's secret redaction before it comes here, and
//! through [`printable`] here.

use crate::plan::{Change, HostPlan};
use crate::terminal::printable;
use crate::secrets::Secrets;
use anstyle::{AnsiColor, Style};
use serde::Serialize;
use std::io::Write;
use std::sync::Mutex;

/// The output format.
/// The exit statuses, one table for every verb (scripts and CI tell them apart).
pub mod exit {
    /// Success; with `--check`, nothing would change.
    pub const OK: i32 = 0;
    /// Any error: bad input (nothing changed), a host that failed, a failed release.
    pub const FAILED: i32 = 1;
    /// `--check` only: something would change.
    pub const CHANGES_PENDING: i32 = 2;
    /// The command line itself is wrong (sysexits' EX_USAGE): an unknown flag, a missing
    /// argument, a mistyped verb. Never 2, so CI can tell a typo from drift.
    pub const USAGE: i32 = 64;
}

/// When output is coloured (`--color`, every verb).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorWhen {
    /// On a terminal, unless `NO_COLOR` is set; `CLICOLOR_FORCE` turns it on anywhere.
    #[default]
    Auto,
    Always,
    Never,
}

/// Whether a stream (a terminal or not) gets colour.
fn colored(when: ColorWhen, is_terminal: bool) -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
    match when {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) => false,
        ColorWhen::Auto => is_terminal || set("CLICOLOR_FORCE"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Human,
    Json,
}

/// How one host's run ended.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    Ok,
    Changed,
    Failed,
}

/// The result of one change in an apply.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeResult {
    #[serde(flatten)]
    pub change: Change,
    /// done, failed or `not run` (after an earlier failure).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything about one host's run.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    pub address: String,
    pub status: HostStatus,
    pub changes: Vec<ChangeResult>,
    pub unchanged: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Remote round trips after connecting.
    pub round_trips: usize,
    pub timings_ms: Timings,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub connect: u128,
    pub probe: u128,
    pub apply: u128,
}

/// The version of the JSON output's shape (docs/json.md). It grows by one whenever a field
/// is renamed, removed or changes meaning; new fields do not change it.
pub const JSON_FORMAT_VERSION: u32 = 1;

/// The whole run, as `--format json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// [`JSON_FORMAT_VERSION`].
    pub format_version: u32,
    pub mode: &'static str,
    pub hosts: Vec<HostReport>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub hosts: usize,
    pub ok: usize,
    pub changed: usize,
    pub failed: usize,
    pub changes: usize,
}

/// The outcome of a verb other than converge: whether it succeeded, and its closing lines
/// for people (`(to_stderr, line)`); its fields go into the JSON summary.
pub trait VerbReport: Serialize {
    fn ok(&self) -> bool;
    fn closing(&self) -> Vec<(bool, String)>;
    /// A `--check` that found something to change: exit 2, as converge's.
    fn pending(&self) -> bool {
        false
    }
}

/// Prints as the run goes. Shared by the host tasks.
pub struct Reporter {
    pub format: Format,
    pub verbose: u8,
    color: bool,
    out: Mutex<()>,
    live: Option<crate::live::Live>,
}

fn paint(color: bool, style: Style, text: &str) -> String {
    if color { format!("{style}{text}{style:#}") } else { text.to_string() }
}

impl Reporter {
    pub fn new(format: Format, verbose: u8) -> Reporter {
        Reporter::with_color(format, verbose, ColorWhen::Auto)
    }

    pub fn with_color(format: Format, verbose: u8, when: ColorWhen) -> Reporter {
        use std::io::IsTerminal;
        let color = format == Format::Human && colored(when, std::io::stdout().is_terminal());
        let live = (format == Format::Human && std::io::stdout().is_terminal()).then(crate::live::Live::on_stdout);
        Reporter { format, verbose, color, out: Mutex::new(()), live }
    }

    fn print(&self, text: &str) {
        if self.live.as_ref().is_some_and(|live| live.println(text)) {
            return;
        }
        let _guard = self.out.lock();
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// Where a host is (connecting, probing, applying 2/5, done), on its live line when
    /// stdout is a terminal; nothing otherwise.
    pub fn host_state(&self, host: &str, text: &str) {
        if let Some(live) = &self.live {
            live.host(host, &printable(text));
        }
    }

    /// One change as a line (and its diff), prefixed with the host.
    pub fn format_change(&self, host: &str, c: &Change, secrets: &Secrets, suffix: &str) -> String {
        let sign_style = match c.action.sign() {
            '+' => Style::new().fg_color(Some(AnsiColor::Green.into())),
            '-' => Style::new().fg_color(Some(AnsiColor::Red.into())),
            '~' => Style::new().fg_color(Some(AnsiColor::Yellow.into())),
            _ => Style::new().fg_color(Some(AnsiColor::Cyan.into())),
        };
        let mut line = format!(
            "{host} {role}: {sign} {kind} {target}",
            role = c.role,
            sign = paint(self.color, sign_style, &c.action.sign().to_string()),
            kind = c.kind,
            target = printable(&c.target)
        );
        if !c.details.is_empty() {
            line.push_str("  ");
            line.push_str(&printable(&c.details.join(", ")));
        }
        line.push_str(suffix);
        line.push('\n');
        if let Some(a) = &c.assumption {
            line.push_str(&format!("{host}     (assuming {})\n", printable(a)));
        }
        if let Some(diff) = &c.diff {
            for d in diff.lines() {
                let style = if d.starts_with('+') && !d.starts_with("+++") {
                    Style::new().fg_color(Some(AnsiColor::Green.into()))
                } else if d.starts_with('-') && !d.starts_with("---") {
                    Style::new().fg_color(Some(AnsiColor::Red.into()))
                } else {
                    Style::new()
                };
                line.push_str(&format!("{host}     {}\n", paint(self.color, style, &printable(d))));
            }
        }
        secrets.redact(&line)
    }

    /// A host's plan, in `--check`.
    pub fn planned(&self, plan: &HostPlan, secrets: &Secrets) {
        if self.format != Format::Human {
            return;
        }
        let mut text = String::new();
        for c in &plan.changes {
            text.push_str(&self.format_change(&plan.host, c, secrets, ""));
        }
        self.print(&text);
    }

    /// One change made, in an apply.
    pub fn applied(&self, host: &str, c: &Change, secrets: &Secrets, error: Option<&str>) {
        if self.format != Format::Human {
            return;
        }
        let mut text = match error {
            None => self.format_change(host, c, secrets, ""),
            Some(_) => self.format_change(host, c, secrets, &paint(self.color, Style::new().fg_color(Some(AnsiColor::Red.into())), "  FAILED")),
        };
        if let Some(e) = error {
            for l in secrets.redact_error(e).lines() {
                text.push_str(&format!("{host}     | {}\n", printable(l)));
            }
        }
        self.print(&text);
    }

    /// Progress notes shown with -v.
    pub fn note(&self, host: &str, text: &str) {
        if self.format == Format::Human && self.verbose > 0 {
            self.print(&format!("{host} {}\n", printable(text)));
        }
    }

    /// The closing summary, or the whole JSON report.
    pub fn finish(&self, report: &RunReport) {
        match self.format {
            Format::Json => {
                let json = serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
                self.print(&format!("{json}\n"));
            }
            Format::Human => {
                if let Some(live) = &self.live {
                    live.clear();
                }
                let mut text = String::from("\n");
                for h in &report.hosts {
                    let changed = h.changes.iter().filter(|c| c.status != "not run" && c.status != "failed").count();
                    let failed = h.changes.iter().filter(|c| c.status == "failed").count() + usize::from(h.error.is_some() && h.changes.iter().all(|c| c.status != "failed"));
                    let word = if report.mode == "check" { "would change" } else { "changed" };
                    text.push_str(&format!("{}: ok={} {word}={} failed={}", h.host, h.unchanged, changed, failed));
                    if self.verbose > 0 {
                        text.push_str(&format!(
                            "  round_trips={} connect={}ms probe={}ms apply={}ms",
                            h.round_trips, h.timings_ms.connect, h.timings_ms.probe, h.timings_ms.apply
                        ));
                    }
                    text.push('\n');
                    if let Some(e) = &h.error {
                        let style = Style::new().fg_color(Some(AnsiColor::Red.into()));
                        for l in e.lines() {
                            text.push_str(&format!("  {}\n", paint(self.color, style, &printable(l))));
                        }
                    }
                }
                let s = &report.summary;
                text.push_str(&format!(
                    "{} hosts: {} ok, {} {}, {} failed; {} changes{}\n",
                    s.hosts,
                    s.ok,
                    s.changed,
                    if report.mode == "check" { "would change" } else { "changed" },
                    s.failed,
                    s.changes,
                    if report.mode == "check" { " planned, nothing was changed (--check)" } else { "" }
                ));
                self.print(&text);
            }
        }
    }

    /// One event of a verb as it happens: `kind` is `phase` (a numbered step), `host` (about
    /// one host) or `info`.
    pub fn event(&self, kind: &str, host: Option<&str>, text: &str) {
        self.emit(kind, host, text, false);
    }

    /// A generated document (a completion script, a man page), byte for byte on stdout.
    pub fn document(&self, bytes: &[u8]) {
        let _guard = self.out.lock();
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }

    /// A line a host's script wrote on its stderr: on stderr for people.
    pub fn host_stderr(&self, host: &str, text: &str) {
        self.emit("stderr", Some(host), text, true);
    }

    /// An error: on stderr for people, an `error` event in JSON.
    pub fn error(&self, text: &str) {
        self.emit("error", None, text, true);
    }

    fn emit(&self, kind: &str, host: Option<&str>, text: &str, to_stderr: bool) {
        let text = printable(text);
        match self.format {
            Format::Json => {
                let mut o = serde_json::Map::new();
                o.insert("event".into(), kind.into());
                if let Some(h) = host {
                    o.insert("host".into(), h.into());
                }
                o.insert("text".into(), text.trim().into());
                self.print(&format!("{}\n", serde_json::Value::Object(o)));
            }
            Format::Human if to_stderr => {
                let _guard = self.out.lock();
                let write = || writeln!(std::io::stderr().lock(), "{text}");
                let _ = match &self.live {
                    Some(live) => live.suspend(write),
                    None => write(),
                };
            }
            Format::Human => self.print(&format!("{text}\n")),
        }
    }

    /// Ends a verb: its closing lines (or its error), the JSON summary, and the exit status
    /// (0 when it succeeded, else 1).
    pub fn conclude<R: VerbReport>(&self, verb: &str, result: anyhow::Result<R>) -> i32 {
        let (code, fields) = match result {
            Ok(report) => {
                for (to_stderr, line) in report.closing() {
                    if to_stderr {
                        self.error(&line);
                    } else {
                        self.event("info", None, &line);
                    }
                }
                let code = match (report.ok(), report.pending()) {
                    (false, _) => exit::FAILED,
                    (true, true) => exit::CHANGES_PENDING,
                    (true, false) => exit::OK,
                };
                (code, serde_json::to_value(&report).unwrap_or_default())
            }
            Err(e) => {
                match e.downcast_ref::<crate::error::Diagnostics>() {
                    // Input errors print as themselves: file:line, the message and the help.
                    Some(d) => self.error(&format!("{d}")),
                    None => self.error(&format!("error: {e:#}")),
                }
                (exit::FAILED, serde_json::Value::Null)
            }
        };
        if self.format == Format::Json {
            let mut o = serde_json::Map::new();
            o.insert("event".into(), "summary".into());
            o.insert("format_version".into(), JSON_FORMAT_VERSION.into());
            o.insert("verb".into(), verb.into());
            o.insert("ok".into(), (code == 0).into());
            o.insert("exit".into(), code.into());
            if let serde_json::Value::Object(m) = fields {
                o.extend(m);
            }
            self.print(&format!("{}\n", serde_json::Value::Object(o)));
        }
        code
    }

    /// Input errors (each with its file and line), then what that means for the run.
    pub fn input_errors(&self, errors: &crate::error::Diagnostics, closing: &str) {
        self.error(&format!("{errors}\n\n{closing}"));
    }

    /// Ends converge or bootstrap: the summary (or the JSON report) and the exit status: 0
    /// success (with `--check`: nothing would change), 2 with `--check` when something
    /// would change, 1 on any error.
    pub fn conclude_run(&self, result: anyhow::Result<Result<RunReport, crate::error::Diagnostics>>, check: bool) -> i32 {
        match result {
            Err(e) => {
                self.error(&format!("error: {e:#}"));
                exit::FAILED
            }
            Ok(Err(errors)) => {
                self.input_errors(&errors, &format!("nothing was changed: {} error(s) found before connecting", errors.len()));
                exit::FAILED
            }
            Ok(Ok(report)) => {
                self.finish(&report);
                if report.summary.failed > 0 {
                    exit::FAILED
                } else if check && report.summary.changes > 0 {
                    exit::CHANGES_PENDING
                } else {
                    exit::OK
                }
            }
        }
    }
}
