//! Apply: the plan's changes as ONE sh script, streamed. The script takes the host's run
//! lock, journals the handlers a change notifies before the change lands, runs each
//! change in a subshell that stops at the first error, and marks each result on stdout so
//! every change is reported as it is made. Packages go in as few `apt-get install`s as the roles' order allows.

use crate::plan::{Change, Step};
use crate::probe::{JOURNAL, LOCK_DIR, RUN_DIR_PREFIX, STATE_DIR};

/// Where the lockout canary keeps the previous versions of login files and the script that
/// puts them back.
pub const CANARY_DIR: &str = "/var/lib/provision/canary";
/// The transient systemd timer that reverts login changes by itself unless the controller
/// confirms a fresh login in time: a run that dies mid-way cannot lock anyone out.
pub const CANARY_UNIT: &str = "provision-canary";
/// How long the host waits for the controller's confirmation before it reverts.
pub const CANARY_SECONDS: u64 = 300;
use crate::sh;
use crate::shell::{Script, Words};

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
    /// verdict on a fresh login. `timer`: systemd has the timer that reverts them by itself
    /// if the controller never answers.
    CanaryArmed { timer: bool },
    /// The host kept the login changes (the fresh login worked).
    CanaryConfirmed,
    /// The host put the previous login files back.
    CanaryReverted,
}

/// The apply script for `changes`. `who` identifies this run in the lock.
pub fn script(changes: &[Change], who: &str) -> Script {
    let mut s = sh!("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
    s.push(sh!("export PATH LC_ALL=C DEBIAN_FRONTEND=noninteractive APT_LISTCHANGES_FRONTEND=none\n"));
    s.push(sh!("umask 022\n"));
    s.push(sh!("mkdir -p {} && chmod 700 {} || exit 1\n", STATE_DIR, STATE_DIR));
    // The lock is a directory (mkdir is atomic). Its owner file names the holder; a holder
    // whose process is gone left a stale lock, which is taken over. Taking over is done under
    // a flock on a guard file, released only once the new owner is written: two runs that
    // both find a stale lock cannot both take it, and a run between its mkdir and its owner
    // line (no owner yet, the lock younger than a minute) is not mistaken for a dead one.
    s.push(sh!(
        "if ! mkdir {} 2>/dev/null; then
  exec 9>>{} && flock -w 10 9 || {{ echo '@@PV locked (another run is taking the lock over)'; exit 75; }}
  pv_owner=$(cat {} 2>/dev/null); pv_pid=${{pv_owner%% *}}
  if [ -n \"$pv_pid\" ] && kill -0 \"$pv_pid\" 2>/dev/null; then echo \"@@PV locked $pv_owner\"; exit 75; fi
  if [ -z \"$pv_pid\" ] && [ -z \"$(find {} -maxdepth 0 -mmin +1 2>/dev/null)\" ]; then echo '@@PV locked (a run is starting)'; exit 75; fi
  rm -rf {}; mkdir {} 2>/dev/null || {{ echo \"@@PV locked $(cat {} 2>/dev/null)\"; exit 75; }}
fi
",
        LOCK_DIR,
        format!("{STATE_DIR}/lock.guard"),
        format!("{LOCK_DIR}/owner"),
        LOCK_DIR,
        LOCK_DIR,
        LOCK_DIR,
        format!("{LOCK_DIR}/owner")
    ));
    s.push(sh!("printf '%s %s\\n' \"$$\" {} > {}\nexec 9>&-\n", who.replace('\n', " "), format!("{LOCK_DIR}/owner")));
    // A run killed before its EXIT trap left its temp directory (perhaps with a secret's
    // stdin in it): ours are cleaned here, under the lock, when their process is gone. Only
    // directories root made (not a link, owned by us): anyone can create names in /tmp, and
    // a FIFO or a link to /dev/zero as `pid` must not hang or flood the run.
    s.push(sh!(
        "for pv_old in {}.*; do [ -d \"$pv_old\" ] && [ ! -L \"$pv_old\" ] && [ -O \"$pv_old\" ] || continue; pv_op=; [ -f \"$pv_old/pid\" ] && [ ! -L \"$pv_old/pid\" ] && read -r pv_op < \"$pv_old/pid\"; if [ -z \"$pv_op\" ] || ! kill -0 \"$pv_op\" 2>/dev/null; then rm -rf -- \"$pv_old\"; fi; done\n",
        RUN_DIR_PREFIX
    ));
    s.push(sh!(
        "PV_RUN=$(mktemp -d {}.XXXXXX) || exit 1; export PV_RUN; echo \"$$\" > \"$PV_RUN/pid\"\ntrap 'rm -rf \"$PV_RUN\" {}' EXIT\n",
        RUN_DIR_PREFIX,
        LOCK_DIR
    ));
    s.push(sh!(
        "pv_journal_add() {{ grep -qxF -- \"$1\" {} 2>/dev/null || {{ printf '%s\\n' \"$1\" >> {} && sync -- {}; }}; }}\n",
        JOURNAL,
        JOURNAL,
        JOURNAL
    ));
    s.push(sh!(
        "pv_journal_clear() {{ [ -f {} ] || return 0; {{ grep -vxF -- \"$1\" {} || true; }} > {}; mv -f {} {}; }}\n",
        JOURNAL,
        JOURNAL,
        format!("{JOURNAL}.new"),
        format!("{JOURNAL}.new"),
        JOURNAL
    ));

    let apt = apt_runs(changes);
    s.push(end_function());
    let login_files: Vec<(&String, Option<&Script>)> = changes.iter().filter_map(|c| c.login_file.as_ref().map(|f| (f, c.login_reload.as_ref()))).collect();
    let mut canary_armed = false;

    for (i, c) in changes.iter().enumerate() {
        if let Some(file) = &c.login_file {
            if !canary_armed {
                canary_armed = true;
                s.push(arm_canary(&login_files));
            }
            let n = login_files.iter().position(|(f, _)| *f == file).unwrap_or(0) + 1;
            s.push(sh!("pv_canary_save {} {}\n", n, file));
        }
        s.push(sh!("(\nset -e\n"));
        for n in &c.notify {
            s.push(sh!("pv_journal_add {}\n", format!("{}/{}", c.role, n)));
        }
        for step in &c.steps {
            match step {
                Step::Shell(code) => {
                    s.line(code.clone());
                }
                Step::AptInstall { .. } => {
                    if let Some(run) = apt.iter().find(|r| r.at == i) {
                        if run.update {
                            s.push(sh!("apt-get update -q\n"));
                        }
                        s.push(sh!(
                            "apt-get install -y -q -o Dpkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -- {}\n",
                            Words(&run.packages)
                        ));
                    }
                }
                Step::AptRemove(pkgs) => {
                    s.push(sh!("apt-get remove -y -q -o Dpkg::Lock::Timeout=120 -- {}\n", Words(pkgs)));
                }
                Step::DaemonReloadIfNeeded => {
                    s.push(sh!("if [ -e \"$PV_RUN/daemon-reload\" ]; then systemctl daemon-reload; rm -f \"$PV_RUN/daemon-reload\"; fi\n"));
                }
            }
        }
        if let Some(key) = &c.clears_journal {
            s.push(sh!("pv_journal_clear {}\n", key));
        }
        s.push(sh!(
            ") >\"$PV_RUN/log\" 2>&1 </dev/null\npv_rc=$?\nif [ $pv_rc -eq 0 ]; then echo '@@PV ok {}'; else echo \"@@PV fail {} $pv_rc\"; base64 -w0 \"$PV_RUN/log\"; echo; pv_end 1; fi\n",
            i,
            i
        ));
    }
    s.push(sh!("pv_end 0\n"));
    s
}

/// The line the controller sends when a fresh login worked.
pub const CANARY_CONFIRM: &str = "confirm\n";
/// The line the controller sends when it did not.
pub const CANARY_REVERT: &str = "revert\n";

/// Sh that ends the script: with login changes made, it asks the controller for a verdict
/// on a fresh login and waits on stdin, still root, so reverting needs no new privilege
/// (the broken sudo rule may be exactly what the verdict is about). EOF counts as revert.
fn end_function() -> Script {
    sh!(
        "pv_end() {{
  if [ -n \"${{pv_canary_n:-}}\" ]; then
    echo '@@PV canary wait'
    if read -r pv_verdict && [ \"$pv_verdict\" = confirm ]; then
      echo '@@PV canary confirmed'
    else
      sh {} && echo '@@PV canary reverted'
    fi
    systemctl stop {} >/dev/null 2>&1; rm -rf -- {}
  fi
  exit \"$1\"
}}
",
        format!("{CANARY_DIR}/restore.sh"),
        format!("{CANARY_UNIT}.timer"),
        CANARY_DIR
    )
}

/// The script that puts the login files back, written whole on the controller: file `N` of
/// `files` was saved as `saved/N` if it existed, and is removed if it did not; a file that
/// a command puts in force (a firewall's rules) has that command run again.
pub fn restore_script(files: &[(&String, Option<&Script>)]) -> Script {
    let mut s = sh!("#!/bin/sh\n");
    for (i, (f, reload)) in files.iter().enumerate() {
        let saved = format!("{CANARY_DIR}/saved/{}", i + 1);
        let tmp = format!("{f}.pv-restore");
        s.push(sh!(
            "if [ -e {} ]; then cp -a -- {} {} && mv -f -- {} {}; else rm -f -- {}; fi\n",
            saved,
            saved,
            tmp,
            tmp,
            *f,
            *f
        ));
        if let Some(r) = reload {
            s.push(sh!("( {}\n) >/dev/null 2>&1\n", *r));
        }
    }
    s
}

/// Sh that prepares the canary: the restore script, and a timer that runs it unless the
/// controller's verdict comes first. The timer is reported only when systemd has it.
fn arm_canary(files: &[(&String, Option<&Script>)]) -> Script {
    let dir = CANARY_DIR;
    let timer = format!("{CANARY_UNIT}.timer");
    let restore = format!("{CANARY_DIR}/restore.sh");
    sh!(
        "systemctl stop {} {} >/dev/null 2>&1; rm -rf -- {}; mkdir -p {} && chmod 700 {}
base64 -d > {} {}pv_canary_n=0
pv_canary_save() {{
  pv_canary_n=$1
  if [ -e \"$2\" ]; then cp -a -- \"$2\" {}/\"$1\"; fi
}}
systemd-run --quiet --unit={} --on-active={} /bin/sh {} </dev/null >/dev/null 2>&1
if systemctl is-active -q {}; then echo '@@PV canary armed timer'; else echo '@@PV canary armed'; fi
",
        timer,
        format!("{CANARY_UNIT}.service"),
        dir,
        format!("{dir}/saved"),
        dir,
        restore,
        crate::shell::heredoc_base64(restore_script(files).as_str().as_bytes()),
        format!("{dir}/saved"),
        CANARY_UNIT,
        format!("{CANARY_SECONDS}s"),
        restore,
        timer
    )
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
        let (name, rest) = crate::shell::marker(line)?;
        let mut words = rest.split(' ');
        match name {
            "ok" => Some(Event::Finished { index: words.next()?.parse().ok()?, outcome: Outcome::Done }),
            "fail" => {
                let index = words.next()?.parse().ok()?;
                let status = words.next().and_then(|s| s.parse().ok()).unwrap_or(-1);
                self.failed = Some((index, status));
                None
            }
            "canary" => match words.next()? {
                "armed" => Some(Event::CanaryArmed { timer: words.next() == Some("timer") }),
                "confirmed" => Some(Event::CanaryConfirmed),
                "reverted" => Some(Event::CanaryReverted),
                _ => None,
            },
            "locked" => Some(Event::Locked { holder: rest.trim().to_string() }),
            _ => None,
        }
    }
}

/// One `apt-get install` of the apply, made at change `at`.
#[derive(Debug, PartialEq, Eq)]
struct AptRun {
    at: usize,
    packages: Vec<String>,
    update: bool,
}

/// The apt installs of a plan. A fresh host would pay for apt (its locks, triggers, man-db)
/// once per package task, so every install joins the first one of the run, except one whose
/// own role made another change since that install began: the role put that change first
/// for a reason (the user whose name the package's scripts take, a debconf answer, a file
/// the package reads at install), so its order is kept and the package starts the next
/// install.
fn apt_runs(changes: &[Change]) -> Vec<AptRun> {
    let mut runs: Vec<AptRun> = Vec::new();
    let mut changed_since: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (i, c) in changes.iter().enumerate() {
        let mut installs = c.steps.iter().filter_map(|s| match s {
            Step::AptInstall { packages, update } => Some((packages, *update)),
            _ => None,
        }).peekable();
        if installs.peek().is_none() {
            changed_since.insert(c.role.as_str());
            continue;
        }
        let join = !runs.is_empty() && !changed_since.contains(c.role.as_str());
        if !join {
            runs.push(AptRun { at: i, packages: Vec::new(), update: false });
            changed_since.clear();
        }
        if let Some(run) = runs.last_mut() {
            for (packages, update) in installs {
                run.packages.extend(packages.iter().cloned());
                run.update |= update;
            }
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Action;

    fn role_change(role: &str, kind: &str, target: &str, step: Step) -> Change {
        let mut c = Change::new(kind, target, Action::Create).step(step);
        c.role = role.into();
        c
    }

    #[test]
    fn packages_install_in_one_call_at_the_first() {
        let changes = vec![
            role_change("firewall", "package", "a", Step::AptInstall { packages: vec!["a".into()], update: false }),
            role_change("firewall", "file", "/x", Step::Shell(sh!("true"))),
            role_change("redis", "package", "b", Step::AptInstall { packages: vec!["b".into()], update: true }),
        ];
        let s = script(&changes, "test");
        assert_eq!(s.matches("apt-get install").count(), 1);
        assert!(s.contains("apt-get install -y -q -o Dpkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -- a b"));
        assert_eq!(s.matches("apt-get update").count(), 1);
    }

    /// The redis role creates its user before redis-server (whose scripts would make one
    /// with another home): merged into the firewall's earlier install, the user task failed.
    #[test]
    fn a_package_after_its_own_roles_change_installs_after_it() {
        let changes = vec![
            role_change("firewall", "package", "nftables", Step::AptInstall { packages: vec!["nftables".into()], update: false }),
            role_change("redis", "user", "redis", Step::Shell(sh!("useradd redis"))),
            role_change("redis", "package", "redis-server", Step::AptInstall { packages: vec!["redis-server".into()], update: false }),
            role_change("sidekiq", "package", "ruby", Step::AptInstall { packages: vec!["ruby".into()], update: false }),
        ];
        let runs = apt_runs(&changes);
        assert_eq!(runs, vec![
            AptRun { at: 0, packages: vec!["nftables".into()], update: false },
            AptRun { at: 2, packages: vec!["redis-server".into(), "ruby".into()], update: false },
        ]);
        let s = script(&changes, "test");
        let (user, install) = (s.find("useradd redis").unwrap(), s.find("-- redis-server ruby").unwrap());
        assert!(user < install, "the user comes first");
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
