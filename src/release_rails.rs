//! What a Rails app needs from a release besides the tree: its gems checked or installed in
//! the new release (`release_bundle`, skipped when Gemfile.lock did not change) and the
//! default migration (`bin/rails db:migrate` when the release has it). Pure: settings in,
//! [`Script`] out; the user's own commands arrive as [`Script`]s made by the caller.

use crate::release_scripts::{as_deploy_user, header, HostCfg, StepCmd};
use crate::sh;
use crate::shell::{sha256_hex, Script};

/// The bundle command when `release_bundle` is not set: the gems are Debian's system gems,
/// so nothing is fetched (`--local`) and nothing is vendored (no `--deployment`).
pub const DEFAULT_BUNDLE: &str = "bundle install --local";
/// The migration when `release_migrate` is not set and the release has an executable `bin/rails`.
pub const DEFAULT_MIGRATE: &str = "bin/rails db:migrate";
/// The marker a successful bundle step leaves in its release (lock=, cmd=, ran=).
pub const BUNDLE_MARKER: &str = ".pv-bundled";

/// How a host runs the bundle step: `command` is the user's code (or the default, written
/// here), `cmd_id` names it in the marker so that a changed command runs again.
pub fn bundle_cmd_id(cmd: &StepCmd) -> String {
    match cmd {
        StepCmd::Default => sha256_hex(format!("default:{DEFAULT_BUNDLE}").as_bytes()),
        StepCmd::Command(c) => sha256_hex(c.as_bytes()),
        StepCmd::Off => String::new(),
    }
}

/// The migration's code for `release_migrate` (`user`: an explicit value, as the caller
/// made it code). Default: `bin/rails db:migrate` if the release has an executable
/// `bin/rails`, checked on the host in the release itself (so `--artifact` and `--dir`
/// decide alike), else nothing. Marks: `migrate-none` or `migrate-ran`.
pub fn migrate_code(user: Option<Script>) -> Script {
    match user {
        Some(code) => {
            let mut s = code;
            s.push(sh!("\necho '@@PV migrate-ran'\n"));
            s
        }
        None => sh!(
            "if [ -x bin/rails ]; then bin/rails db:migrate\necho '@@PV migrate-ran'\nelse echo '@@PV migrate-none the release has no executable bin/rails'; fi\n"
        ),
    }
}

/// The bundle step on one host, in releases/`ts` before the health gate. `code` is the
/// command to run (an explicit `release_bundle`, made code by the caller), or None for [`DEFAULT_BUNDLE`], which
/// runs only when the release has a Gemfile.lock). Skipped when the current release's
/// marker says the same command succeeded on a byte-identical Gemfile.lock (sha256); the
/// marker then moves on to the new release unchanged (its `ran=` names the release where it
/// ran). Marks: `bundle-none`, `bundle-skipped RELEASE`, `bundled`, `bundle-failed`.
pub fn bundle_script(cfg: &HostCfg, ts: &str, code: Option<Script>, cmd_id: &str) -> Script {
    let is_default = code.is_none();
    let code = code.unwrap_or_else(|| sh!("bundle install --local"));
    let mut s = header(cfg);
    s.push(sh!(
        "R=\"$D/releases/\"{}\n[ -d \"$R\" ] || {{ echo '@@PV bundle-failed the release is not on this host'; exit 4; }}\n\
M={}\nid={}\nnew=\n\
if [ -f \"$R/Gemfile.lock\" ]; then new=$(sha256sum < \"$R/Gemfile.lock\" | cut -c1-64); fi\n",
        ts,
        BUNDLE_MARKER,
        cmd_id
    ));
    if is_default {
        s.push(sh!("if [ -z \"$new\" ]; then echo '@@PV bundle-none the release has no Gemfile.lock'; exit 0; fi\n"));
    }
    s.push(sh!(
        "C=$(readlink \"$D/current\" 2>/dev/null || true)\n\
if [ -n \"$new\" ] && [ -n \"$C\" ] && [ -f \"$C/$M\" ] && [ \"$(sed -n 's/^lock=//p' \"$C/$M\")\" = \"$new\" ] && [ \"$(sed -n 's/^cmd=//p' \"$C/$M\")\" = \"$id\" ]; then\n\
  cp -- \"$C/$M\" \"$R/$M\" && chown \"$OWN\" \"$R/$M\" 2>/dev/null\n\
  echo \"@@PV bundle-skipped $(sed -n 's/^ran=//p' \"$C/$M\" | tr -cd '0-9')\"; exit 0\n\
fi\n\
rm -f -- \"$R/$M\"\n"
    ));
    s.push(sh!("set +e\n{}rc=$?\nset -e\n", as_deploy_user(cfg, ts, &code)));
    s.push(sh!(
        "if [ $rc -ne 0 ]; then echo \"@@PV bundle-failed exit status $rc\"; exit 4; fi\n\
printf 'lock=%s\\ncmd=%s\\nran=%s\\n' \"$new\" \"$id\" {} > \"$R/$M\" && chown \"$OWN\" \"$R/$M\" 2>/dev/null\necho '@@PV bundled'\n",
        ts
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    fn cfg(deploy_to: &Path) -> HostCfg {
        HostCfg {
            deploy_to: deploy_to.to_string_lossy().into_owned(),
            deploy_user: "nobody-such-user".into(),
            keep_releases: 2,
            linked_files: vec![],
            linked_dirs: vec![],
            migrate: StepCmd::Default,
            bundle: StepCmd::Default,
            assets: None,
            rails_env: None,
            env_file: None,
            puma: vec![],
            sidekiq: vec![],
            faye: vec![],
            health_url: None,
            gate: None,
            health_retries: 1,
            health_interval: 1,
            health_timeout: 1,
            restart_timeout: 5,
            lock_ttl: 3600,
        }
    }

    /// (marks, other lines, status) of `script` run by a local sh.
    fn run(script: &Script) -> (Vec<String>, Vec<String>, i32) {
        let o = Command::new("sh").arg("-c").arg(script.as_str()).output().expect("sh");
        let (mut marks, mut other) = (vec![], vec![]);
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            match l.strip_prefix("@@PV ") {
                Some(m) => marks.push(m.to_string()),
                None => other.push(l.to_string()),
            }
        }
        (marks, other, o.status.code().unwrap_or(-1))
    }

    fn release(d: &Path, ts: &str, lock: Option<&str>) {
        let r = d.join("releases").join(ts);
        std::fs::create_dir_all(&r).expect("mkdir");
        if let Some(l) = lock {
            std::fs::write(r.join("Gemfile.lock"), l).expect("write");
        }
    }

    fn switch(d: &Path, ts: &str) {
        let _ = std::fs::remove_file(d.join("current"));
        std::os::unix::fs::symlink(d.join("releases").join(ts), d.join("current")).expect("link");
    }

    /// A directory name (deploy_to) and a command's file name holding each hostile piece:
    /// the values are quoted, so nothing runs but the command, and the skip logic still works.
    #[test]
    fn bundle_step_runs_skips_and_fails_under_hostile_paths() {
        for (i, bad) in ["it's", "say \"hi\"", "back\\slash", "$(touch PWNED)", "new\nline", "-leading", "`touch PWNED`"].iter().enumerate() {
            let tmp = tempfile::tempdir().expect("tmp");
            let d = tmp.path().join(format!("app {bad}"));
            let c = cfg(&d);
            // The user's command is code by design: it counts its runs in a file.
            let cmd = "echo ran >> bundle-runs; echo gems ok";
            let id = bundle_cmd_id(&StepCmd::Command(cmd.into()));
            let user = || Some(Script::user_code(cmd));
            release(&d, "20260101000001", Some("lock A\n"));
            let (m, other, st) = run(&bundle_script(&c, "20260101000001", user(), &id));
            assert_eq!((st, m.last().map(String::as_str)), (0, Some("bundled")), "case {i}: {m:?} {other:?}");
            assert!(other.iter().any(|l| l == "gems ok"), "case {i}: the command's output is shown: {other:?}");
            switch(&d, "20260101000001");
            // Same lock: skipped, and the marker says where it ran.
            release(&d, "20260101000002", Some("lock A\n"));
            let (m, _, st) = run(&bundle_script(&c, "20260101000002", user(), &id));
            assert_eq!((st, m.last().map(String::as_str)), (0, Some("bundle-skipped 20260101000001")), "case {i}");
            assert!(!d.join("releases/20260101000002/bundle-runs").exists(), "case {i}: skipped means not run");
            switch(&d, "20260101000002");
            // A changed command runs again even on the same lock.
            let other_id = bundle_cmd_id(&StepCmd::Command("bundle check".into()));
            release(&d, "20260101000003", Some("lock A\n"));
            let (m, _, _) = run(&bundle_script(&c, "20260101000003", user(), &other_id));
            assert_eq!(m.last().map(String::as_str), Some("bundled"), "case {i}");
            // A changed lock runs; a failing command fails and leaves no marker.
            release(&d, "20260101000004", Some("lock B\n"));
            let (m, _, st) = run(&bundle_script(&c, "20260101000004", Some(Script::user_code("echo nope >&2; exit 7")), &id));
            assert_eq!((st, m.last().map(String::as_str)), (4, Some("bundle-failed exit status 7")), "case {i}");
            assert!(!d.join("releases/20260101000004").join(BUNDLE_MARKER).exists(), "case {i}");
            assert!(!tmp.path().join("PWNED").exists() && !Path::new("PWNED").exists(), "case {i}: a path became code");
        }
    }

    #[test]
    fn default_bundle_needs_a_gemfile_lock_and_off_is_off() {
        let tmp = tempfile::tempdir().expect("tmp");
        let d = tmp.path().join("app");
        release(&d, "20260101000001", None);
        let (m, _, st) = run(&bundle_script(&cfg(&d), "20260101000001", None, &bundle_cmd_id(&StepCmd::Default)));
        assert_eq!((st, m[0].as_str()), (0, "bundle-none the release has no Gemfile.lock"));
        assert_eq!(StepCmd::from_var(Some("  ".into())), StepCmd::Off);
        assert_eq!(StepCmd::from_var(None), StepCmd::Default);
        assert_eq!(StepCmd::from_var(Some("bundle check".into())), StepCmd::Command("bundle check".into()));
    }

    #[test]
    fn default_migration_runs_only_with_an_executable_bin_rails() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tmp");
        let d = tmp.path().join("it's $(touch PWNED)");
        release(&d, "20260101000001", None);
        let c = cfg(&d);
        let (m, _, st) = run(&{
            let mut s = header(&c);
            s.push(as_deploy_user(&c, "20260101000001", &migrate_code(None)));
            s
        });
        assert_eq!((st, m[0].as_str()), (0, "migrate-none the release has no executable bin/rails"));
        let bin = d.join("releases/20260101000001/bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        std::fs::write(bin.join("rails"), "#!/bin/sh\necho \"rails $*\" > ran\n").expect("write");
        std::fs::set_permissions(bin.join("rails"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut s = header(&c);
        s.push(as_deploy_user(&c, "20260101000001", &migrate_code(None)));
        let (m, _, st) = run(&s);
        assert_eq!((st, m[0].as_str()), (0, "migrate-ran"));
        let ran = std::fs::read_to_string(d.join("releases/20260101000001/ran")).expect("ran");
        assert_eq!(ran, "rails db:migrate\n");
        assert!(!tmp.path().join("PWNED").exists());
    }
}
