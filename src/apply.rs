//! Apply: the plan's changes as ONE sh script, streamed. The script takes the host's run
//! lock, journals the handlers a change notifies before the change lands, runs each
//! change in a subshell that stops at the first error, and marks each result on stdout so
//! every change is reported as it is made. All packages go in one `apt-get install`.

use crate::plan::{Change, Step};
use crate::probe::{JOURNAL, LOCK_DIR, STATE_DIR};

/// Where the lockout canary keeps the previous versions of login files and the script that
/// puts them back.
pub const CANARY_DIR: &str = "/var/lib/provision/canary";
/// The transient systemd timer that reverts login changes by itself unless the controller
/// confirms a fresh login in time: a run that dies mid-way cannot lock anyone out.
pub const CANARY_UNIT: &str = "provision-canary";
/// How long the host waits for the controller's confirmation before it reverts.
pub const CANARY_SECONDS: u64 = 300;
use crate::shell::quote;

/// What the host reported about one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Failed { status: i32, output: String },
}

/// An event read from the apply script's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Change `index` finished.
    Finished { index: usize, outcome: Outcome },
    /// Another run holds the host's lock.
    Locked { holder: String },
    /// Login files are about to change; at the end the script waits for the controller's
    /// verdict on a fresh login.
    CanaryArmed,
    /// The host kept the login changes (the fresh login worked).
    CanaryConfirmed,
    /// The host put the previous login files back.
    CanaryReverted,
}

/// The apply script for `changes`. `who` identifies this run in the lock.
pub fn script(changes: &[Change], who: &str) -> String {
    let mut s = String::new();
    s.push_str("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
    s.push_str("export PATH LC_ALL=C DEBIAN_FRONTEND=noninteractive APT_LISTCHANGES_FRONTEND=none\n");
    s.push_str("umask 022\n");
    s.push_str(&format!("mkdir -p {STATE_DIR} && chmod 700 {STATE_DIR} || exit 1\n"));
    // The lock is a directory (mkdir is atomic). Its owner file names the holder; a holder
    // whose process is gone left a stale lock, which is taken over.
    s.push_str(&format!(
        "if ! mkdir {LOCK_DIR} 2>/dev/null; then pv_owner=$(cat {LOCK_DIR}/owner 2>/dev/null); pv_pid=${{pv_owner%% *}}; \
if [ -n \"$pv_pid\" ] && kill -0 \"$pv_pid\" 2>/dev/null; then echo \"@@PV locked $pv_owner\"; exit 75; fi; \
rm -rf {LOCK_DIR}; mkdir {LOCK_DIR} 2>/dev/null || {{ echo \"@@PV locked $(cat {LOCK_DIR}/owner 2>/dev/null)\"; exit 75; }}; fi\n"
    ));
    s.push_str(&format!("echo \"$$ {}\" > {LOCK_DIR}/owner\n", who.replace(['"', '$', '`', '\\', '\n'], "")));
    s.push_str(&format!("PV_RUN=$(mktemp -d /tmp/.pv-run.XXXXXX) || exit 1; export PV_RUN\ntrap 'rm -rf \"$PV_RUN\" {LOCK_DIR}' EXIT\n"));
    s.push_str(&format!("pv_journal_add() {{ grep -qxF -- \"$1\" {JOURNAL} 2>/dev/null || {{ printf '%s\\n' \"$1\" >> {JOURNAL} && sync -- {JOURNAL}; }}; }}\n"));
    s.push_str(&format!("pv_journal_clear() {{ [ -f {JOURNAL} ] || return 0; {{ grep -vxF -- \"$1\" {JOURNAL} || true; }} > {JOURNAL}.new; mv -f {JOURNAL}.new {JOURNAL}; }}\n"));

    let all_packages: Vec<&String> = changes
        .iter()
        .flat_map(|c| &c.steps)
        .filter_map(|s| match s {
            Step::AptInstall { packages, .. } => Some(packages),
            _ => None,
        })
        .flatten()
        .collect();
    let needs_update = changes.iter().flat_map(|c| &c.steps).any(|s| matches!(s, Step::AptInstall { update: true, .. }));
    s.push_str(&end_function());
    let mut apt_done = false;
    let mut canary_armed = false;

    for (i, c) in changes.iter().enumerate() {
        if let Some(file) = &c.login_file {
            if !canary_armed {
                canary_armed = true;
                s.push_str(&arm_canary());
            }
            s.push_str(&format!("pv_canary_save {}\n", quote(file)));
        }
        s.push_str("(\nset -e\n");
        for n in &c.notify {
            s.push_str(&format!("pv_journal_add {}\n", quote(&format!("{}/{}", c.role, n))));
        }
        for step in &c.steps {
            match step {
                Step::Shell(sh) => {
                    s.push_str(sh);
                    if !sh.ends_with('\n') {
                        s.push('\n');
                    }
                }
                Step::AptInstall { .. } if !apt_done => {
                    apt_done = true;
                    if needs_update {
                        s.push_str("apt-get update -q\n");
                    }
                    s.push_str(&format!(
                        "apt-get install -y -q -o Dpkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -- {}\n",
                        crate::shell::quote_all(all_packages.iter())
                    ));
                }
                Step::AptInstall { .. } => {}
                Step::AptRemove(pkgs) => s.push_str(&format!(
                    "apt-get remove -y -q -o Dpkg::Lock::Timeout=120 -- {}\n",
                    crate::shell::quote_all(pkgs.iter())
                )),
                Step::DaemonReloadIfNeeded => {
                    s.push_str("if [ -e \"$PV_RUN/daemon-reload\" ]; then systemctl daemon-reload; rm -f \"$PV_RUN/daemon-reload\"; fi\n")
                }
            }
        }
        if let Some(key) = &c.clears_journal {
            s.push_str(&format!("pv_journal_clear {}\n", quote(key)));
        }
        s.push_str(&format!(
            ") >\"$PV_RUN/log\" 2>&1 </dev/null\npv_rc=$?\nif [ $pv_rc -eq 0 ]; then echo '@@PV ok {i}'; else echo \"@@PV fail {i} $pv_rc\"; base64 -w0 \"$PV_RUN/log\"; echo; pv_end 1; fi\n"
        ));
    }
    s.push_str("pv_end 0\n");
    s
}

/// The line the controller sends when a fresh login worked.
pub const CANARY_CONFIRM: &str = "confirm\n";
/// The line the controller sends when it did not.
pub const CANARY_REVERT: &str = "revert\n";

/// Sh that ends the script: with login changes made, it asks the controller for a verdict
/// on a fresh login and waits on stdin, still root, so reverting needs no new privilege
/// (the broken sudo rule may be exactly what the verdict is about). EOF counts as revert.
fn end_function() -> String {
    r#"pv_end() {
  if [ -n "${pv_canary_n:-}" ]; then
    echo '@@PV canary wait'
    if read -r pv_verdict && [ "$pv_verdict" = confirm ]; then
      echo '@@PV canary confirmed'
    else
      sh DIR/restore.sh && echo '@@PV canary reverted'
    fi
    systemctl stop UNIT.timer >/dev/null 2>&1; rm -rf DIR
  fi
  exit "$1"
}
"#
    .replace("UNIT", CANARY_UNIT)
    .replace("DIR", CANARY_DIR)
}

/// Sh that prepares the canary: a fresh restore script, and a timer that runs it unless
/// [`confirm_canary_script`] stops it first.
fn arm_canary() -> String {
    r#"systemctl stop UNIT.timer UNIT.service >/dev/null 2>&1; rm -rf DIR; mkdir -p DIR/saved && chmod 700 DIR
echo '#!/bin/sh' > DIR/restore.sh
pv_canary_n=0
pv_canary_save() {
  pv_canary_n=$((pv_canary_n + 1))
  if [ -e "$1" ]; then
    cp -a -- "$1" "DIR/saved/$pv_canary_n"
    printf 'cp -a -- %s "%s.pv-restore" && mv -f -- "%s.pv-restore" "%s"
' "DIR/saved/$pv_canary_n" "$1" "$1" "$1" >> DIR/restore.sh
  else
    printf 'rm -f -- "%s"
' "$1" >> DIR/restore.sh
  fi
}
systemd-run --quiet --unit=UNIT --on-active=SECONDS /bin/sh DIR/restore.sh </dev/null >/dev/null 2>&1 || true
echo '@@PV canary armed'
"#
    .replace("UNIT", CANARY_UNIT)
    .replace("DIR", CANARY_DIR)
    .replace("SECONDS", &CANARY_SECONDS.to_string())
}

/// Reads the apply script's output one line at a time.
#[derive(Default)]
pub struct EventParser {
    failed: Option<(usize, i32)>,
}

impl EventParser {
    /// The event this line completes, if any.
    pub fn line(&mut self, line: &str) -> Option<Event> {
        if let Some((index, status)) = self.failed.take() {
            use base64::Engine;
            let output = base64::engine::general_purpose::STANDARD
                .decode(line.trim())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|_| line.to_string());
            return Some(Event::Finished { index, outcome: Outcome::Failed { status, output } });
        }
        let rest = line.strip_prefix("@@PV ")?;
        let mut words = rest.split(' ');
        match words.next()? {
            "ok" => Some(Event::Finished { index: words.next()?.parse().ok()?, outcome: Outcome::Done }),
            "fail" => {
                let index = words.next()?.parse().ok()?;
                let status = words.next().and_then(|s| s.parse().ok()).unwrap_or(-1);
                self.failed = Some((index, status));
                None
            }
            "canary" => match words.next()? {
                "armed" => Some(Event::CanaryArmed),
                "confirmed" => Some(Event::CanaryConfirmed),
                "reverted" => Some(Event::CanaryReverted),
                _ => None,
            },
            "locked" => Some(Event::Locked { holder: rest.trim_start_matches("locked").trim().to_string() }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Action;

    #[test]
    fn packages_install_in_one_call_at_the_first() {
        let changes = vec![
            Change::new("package", "a", Action::Create).step(Step::AptInstall { packages: vec!["a".into()], update: false }),
            Change::new("file", "/x", Action::Create).shell("true"),
            Change::new("package", "b", Action::Create).step(Step::AptInstall { packages: vec!["b".into()], update: true }),
        ];
        let s = script(&changes, "test");
        assert_eq!(s.matches("apt-get install").count(), 1);
        assert!(s.contains("apt-get install -y -q -o Dpkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -- a b"));
        assert_eq!(s.matches("apt-get update").count(), 1);
    }

    #[test]
    fn parses_events() {
        let mut p = EventParser::default();
        assert_eq!(p.line("@@PV ok 3"), Some(Event::Finished { index: 3, outcome: Outcome::Done }));
        assert_eq!(p.line("@@PV fail 4 1"), None);
        assert_eq!(p.line("Ym9vbQ=="), Some(Event::Finished { index: 4, outcome: Outcome::Failed { status: 1, output: "boom".into() } }));
        assert_eq!(p.line("@@PV locked 123 me"), Some(Event::Locked { holder: "123 me".into() }));
        assert_eq!(p.line("noise"), None);
    }
}
