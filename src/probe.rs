//! Probe: turns a host's [`FactRequest`] into ONE POSIX sh script, and its output into
//! [`Facts`]. The script only reads (guards and validations run on temp files), exits 0,
//! and reports absence as data. One call per kind of fact keeps fork/exec cost flat:
//! one `find` for all paths, one `sha256sum` for all files, one `dpkg-query`, one
//! `systemctl show`, one `getent` per database.

use crate::facts::*;
use crate::sh;
use crate::shell::{heredoc_base64, mark, Alternatives, Script, Words, MARK};
use base64::Engine;
use std::collections::HashMap;

/// Where provision keeps its state on a host: the lock and the pending-handlers journal.
pub const STATE_DIR: &str = "/var/lib/provision";
/// The journal of handlers notified by changes whose handlers have not run yet.
pub const JOURNAL: &str = "/var/lib/provision/pending-handlers";
/// The per-host run lock (a directory, created atomically with mkdir).
pub const LOCK_DIR: &str = "/var/lib/provision/lock";

/// Each apply run's temp directory is `RUN_DIR_PREFIX.XXXXXX`.
pub const RUN_DIR_PREFIX: &str = "/tmp/.pv-run";

/// Files larger than this are compared by hash only; their diff is not shown.
pub const MAX_DIFF_BYTES: u64 = 256 * 1024;

/// Whether the probe reads a file's content for a diff (when its hash is not the wanted one):
/// small enough, and readable by more than its owner (files holding a secret are 0600).
pub fn content_readable(f: &PathFact) -> bool {
    f.kind == PathKind::File && f.size <= MAX_DIFF_BYTES && f.mode & 0o044 != 0
}

/// The probe script for `req`.
pub fn script(req: &FactRequest) -> Script {
    let mut s = sh!("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH LC_ALL=C\n");
    // Not `</dev/null` here: sh reads this very script from stdin, block by block, and
    // would lose the rest of it. Commands that could read stdin get their own `</dev/null`.
    s.push(sh!("exec 2>/dev/null\n"));
    s.push(sh!("{}cat {}\n", mark("lock"), format!("{LOCK_DIR}/owner")));
    s.push(sh!("{}cat {}\n", mark("journal"), JOURNAL));
    // What a killed run left behind: a lock whose holder is gone, a temp directory whose
    // process is gone (a secret's stdin may be in one). A run with nothing to change still
    // cleans them, so a converged host keeps no secret in /tmp. Only directories we made
    // count (see the apply script): a FIFO planted as `pid` must not hang the probe.
    s.push(sh!(
        "{}pv_o=$(cat {}) && {{ kill -0 \"${{pv_o%% *}}\" || echo stale; }}\nfor pv_d in {}.*; do [ -d \"$pv_d\" ] && [ ! -L \"$pv_d\" ] && [ -O \"$pv_d\" ] || continue; pv_p=; [ -f \"$pv_d/pid\" ] && [ ! -L \"$pv_d/pid\" ] && read -r pv_p < \"$pv_d/pid\"; {{ [ -n \"$pv_p\" ] && kill -0 \"$pv_p\"; }} || echo stale; done\n",
        mark("leftovers"),
        format!("{LOCK_DIR}/owner"),
        RUN_DIR_PREFIX
    ));

    if !req.paths.is_empty() {
        // Every path is absolute (checked when tasks are lowered); `./` keeps one that is
        // not from ever reading as a `find` expression such as `-exec`.
        let paths: Vec<String> = req.paths.iter().map(|p| if p.starts_with('/') { p.clone() } else { format!("./{p}") }).collect();
        s.push(sh!("{}find -P {} -maxdepth 0 -printf '%p\\t%y\\t%m\\t%u\\t%g\\t%s\\t%l\\n'\n", mark("paths"), Words(&paths)));
    }
    if !req.hashes.is_empty() {
        let files: Vec<&String> = req.hashes.keys().collect();
        s.push(sh!("pv_sums=$(sha256sum -- {})\n{}printf '%s\\n' \"$pv_sums\"\n", Words(&files), mark("sums")));
        // Read the content of readable files whose hash differs from the one we want, so
        // the plan can show a diff. The wanted hashes are matched in sh, not per file. A file
        // readable by its owner only (0600, 0400: how files holding a secret are written)
        // is never read, so an old version's secret never shows, whatever the new one holds.
        let wanted: Vec<String> = req.hashes.iter().filter(|(_, w)| w.read_content).map(|(p, w)| format!("{}  {}", w.sha256, p)).collect();
        let readable: Vec<&String> = req.hashes.iter().filter(|(_, w)| w.read_content).map(|(p, _)| p).collect();
        if !readable.is_empty() {
            s.push(sh!(
                "printf '%s\\n' \"$pv_sums\" | while read -r pv_h pv_p; do case \"$pv_h  $pv_p\" in {}) ;; *) case \"$pv_p\" in {}) [ \"$(stat -c %s -- \"$pv_p\")\" -le {} ] && [ $(( 0$(stat -c %a -- \"$pv_p\") & 36 )) -ne 0 ] && {{ echo \"@@PV content $pv_p\"; base64 -w0 -- \"$pv_p\"; echo; }};; esac;; esac; done\n",
                Alternatives(&wanted),
                Alternatives(&readable),
                MAX_DIFF_BYTES,
            ));
        }
    }
    let all_packages: Vec<&String> = req.packages_present.iter().chain(req.packages_absent.iter()).collect();
    if !all_packages.is_empty() {
        s.push(sh!(
            "pv_dpkg=$(dpkg-query -W -f='${{Package}}\\t${{db:Status-Abbrev}}\\t${{Version}}\\n' -- {})\n{}printf '%s\\n' \"$pv_dpkg\"\n",
            Words(&all_packages),
            mark("packages")
        ));
    }
    if !req.packages_present.is_empty() {
        // apt's view is only needed when something is missing: skip it on a no-op run.
        let present: Vec<&String> = req.packages_present.iter().collect();
        s.push(sh!(
            "if [ \"$(printf '%s\\n' \"$pv_dpkg\" | grep -c \"$(printf '\\tii ')\")\" -lt {} ]; then {}find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 | head -n 1; {}apt-cache policy -- {}; fi\n",
            req.packages_present.len(),
            mark("apt"),
            mark("candidates"),
            Words(&present),
        ));
    }
    if !req.units.is_empty() {
        let units: Vec<&String> = req.units.iter().collect();
        s.push(sh!("{}systemctl show --no-pager -p Id,LoadState,UnitFileState,ActiveState,FragmentPath -- {}\n", mark("units"), Words(&units)));
    }
    if !req.users.is_empty() {
        let users: Vec<&String> = req.users.iter().collect();
        s.push(sh!("{}getent passwd -- {}\n", mark("passwd"), Words(&users)));
    }
    if !req.groups.is_empty() {
        let groups: Vec<&String> = req.groups.iter().collect();
        s.push(sh!("{}getent group -- {}\n", mark("group"), Words(&groups)));
    }
    for (id, cmd) in &req.checks {
        s.push(sh!("echo {}; ( {}\n) </dev/null >/dev/null 2>&1; echo \"$?\"\n", format!("{MARK} check {id}"), cmd));
    }
    for v in &req.validations {
        let cmd = v.command.with_file_placeholder(sh!("\"$pv_t\""));
        // Skipped, in sh and without a process, when the file already has this content.
        let current = v.unless_current.as_ref().filter(|(p, _)| req.hashes.contains_key(p));
        if let Some((path, sha)) = current {
            s.push(sh!("case \"$pv_sums\" in *{}*) ;; *)\n", format!("{sha}  {path}")));
        }
        s.push(sh!(
            "pv_t=$(mktemp) && base64 -d > \"$pv_t\" {}echo {}; pv_out=$( ( {}\n) 2>&1 </dev/null); echo \"$?\"; printf '%s' \"$pv_out\" | base64 -w0; echo; rm -f \"$pv_t\"\n",
            heredoc_base64(&v.content),
            format!("{MARK} validate {}", v.id),
            cmd
        ));
        if current.is_some() {
            s.push(sh!(";; esac\n"));
        }
    }
    if req.host_facts {
        s.push(crate::host_facts::HostFacts::probe_section());
    }
    s.push(sh!("{}exit 0\n", mark("end")));
    s
}

/// Parses the probe's output. Never panics: a malformed line is skipped, and a section the
/// probe did not reach leaves its facts empty (the plan then reports what it assumes).
pub fn parse(output: &str) -> Facts {
    let mut facts = Facts::default();
    let mut section = String::new();
    let mut arg = String::new();
    let mut unit_block: HashMap<String, String> = HashMap::new();
    let mut pending_validation: Option<(String, Option<i32>)> = None;
    let mut pending_check: Option<String> = None;
    let mut candidates_pkg: Option<String> = None;
    let mut host_facts: Option<Vec<&str>> = None;

    for line in output.lines() {
        if let Some((name, a)) = crate::shell::marker(line) {
            flush_unit(&mut unit_block, &mut facts);
            section = name.to_string();
            arg = a.to_string();
            match name {
                "check" => pending_check = Some(arg.clone()),
                "validate" => pending_validation = Some((arg.clone(), None)),
                "apt" => facts.apt.lists_fresh = false,
                "facts" => host_facts = Some(Vec::new()),
                _ => {}
            }
            continue;
        }
        match section.as_str() {
            "lock" if !line.trim().is_empty() => facts.lock_holder = Some(line.trim().to_string()),
            "leftovers" if line.trim() == "stale" => facts.stale_leftovers = true,
            "journal" => {
                let h = line.trim();
                if !h.is_empty() && !facts.pending_handlers.iter().any(|x| x == h) {
                    facts.pending_handlers.push(h.to_string());
                }
            }
            "paths" => {
                let f: Vec<&str> = line.split('\t').collect();
                if f.len() == 7 {
                    let kind = match f[1] {
                        "f" => PathKind::File,
                        "d" => PathKind::Directory,
                        "l" => PathKind::Link,
                        _ => PathKind::Other,
                    };
                    if let (Ok(mode), Ok(size)) = (u32::from_str_radix(f[2], 8), f[5].parse()) {
                        facts.paths.insert(
                            f[0].to_string(),
                            PathFact { kind, mode, owner: f[3].into(), group: f[4].into(), size, link_target: f[6].into() },
                        );
                    }
                }
            }
            "sums" => {
                if let Some((h, p)) = line.split_once("  ") {
                    if h.len() == 64 {
                        facts.hashes.insert(p.to_string(), h.to_string());
                    }
                }
            }
            "content" => {
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(line.trim()) {
                    facts.contents.insert(arg.clone(), bytes);
                }
            }
            "packages" => {
                let f: Vec<&str> = line.split('\t').collect();
                if f.len() == 3 && !f[0].is_empty() {
                    facts.packages.insert(
                        f[0].to_string(),
                        PackageFact { installed: f[1].starts_with("ii"), version: f[2].to_string() },
                    );
                }
            }
            "apt" if !line.trim().is_empty() => facts.apt.lists_fresh = true,
            "facts" => host_facts.get_or_insert_with(Vec::new).push(line),
            "candidates" => {
                if !line.starts_with(' ') && line.ends_with(':') {
                    candidates_pkg = Some(line.trim_end_matches(':').to_string());
                } else if let (Some(pkg), Some(c)) = (&candidates_pkg, line.trim().strip_prefix("Candidate:")) {
                    if c.trim() != "(none)" {
                        facts.apt.known.insert(pkg.clone());
                    }
                }
            }
            "units" => {
                if line.trim().is_empty() {
                    flush_unit(&mut unit_block, &mut facts);
                } else if let Some((k, v)) = line.split_once('=') {
                    unit_block.insert(k.to_string(), v.to_string());
                }
            }
            "passwd" => {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() == 7 {
                    if let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse()) {
                        facts.users.insert(
                            f[0].to_string(),
                            PasswdEntry { name: f[0].into(), uid, gid, home: f[5].into(), shell: f[6].into() },
                        );
                    }
                }
            }
            "group" => {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() == 4 {
                    if let Ok(gid) = f[2].parse() {
                        let members = f[3].split(',').filter(|m| !m.is_empty()).map(str::to_string).collect();
                        facts.groups.insert(f[0].to_string(), GroupEntry { name: f[0].into(), gid, members });
                    }
                }
            }
            "check" => {
                if let (Some(id), Ok(code)) = (pending_check.take(), line.trim().parse()) {
                    facts.checks.insert(id, code);
                }
            }
            "validate" => match pending_validation.take() {
                Some((id, None)) => pending_validation = Some((id, line.trim().parse().ok().or(Some(-1)))),
                Some((id, Some(status))) => {
                    let output = base64::engine::general_purpose::STANDARD
                        .decode(line.trim())
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    facts.validations.insert(id, ValidationResult { status, output });
                }
                None => {}
            },
            _ => {}
        }
    }
    flush_unit(&mut unit_block, &mut facts);
    facts.host = host_facts.and_then(|lines| crate::host_facts::HostFacts::parse(&lines));
    if let Some((id, Some(status))) = pending_validation {
        facts.validations.insert(id, ValidationResult { status, output: String::new() });
    }
    facts
}

fn flush_unit(block: &mut HashMap<String, String>, facts: &mut Facts) {
    if let Some(id) = block.get("Id").cloned() {
        let get = |k: &str| block.get(k).cloned().unwrap_or_default();
        facts.units.insert(
            id,
            UnitFact {
                load_state: get("LoadState"),
                unit_file_state: get("UnitFileState"),
                active_state: get("ActiveState"),
                fragment_path: get("FragmentPath"),
            },
        );
    }
    block.clear();
}

/// Whether the probe ran to its end (its last section is present).
pub fn complete(output: &str) -> bool {
    output.lines().any(|l| crate::shell::marker(l) == Some(("end", "")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_section() {
        let out = "@@PV lock\n@@PV journal\nnginx/reload nginx\n@@PV paths\n/etc/x\tf\t644\troot\troot\t12\t\n/etc/l\tl\t777\troot\troot\t4\t/tmp\n@@PV sums\n".to_string()
            + &"a".repeat(64) + "  /etc/x\n@@PV content /etc/x\naGVsbG8K\n@@PV packages\nnginx\tii \t1.22\ncurl\tun \t\n@@PV apt\n@@PV candidates\ncurl:\n  Installed: (none)\n  Candidate: 7.88\n@@PV units\nId=nginx.service\nLoadState=loaded\nUnitFileState=enabled\nActiveState=active\nFragmentPath=/lib/systemd/system/nginx.service\n\nId=x.service\nLoadState=not-found\nUnitFileState=\nActiveState=inactive\nFragmentPath=\n@@PV passwd\ndeploy:x:1000:1000::/home/deploy:/bin/bash\n@@PV group\ndeploy:x:1000:www-data,a\n@@PV check c1\n1\n@@PV validate v1\n1\nYm9vbQ==\n@@PV end\n";
        let f = parse(&out);
        assert_eq!(f.pending_handlers, vec!["nginx/reload nginx"]);
        assert_eq!(f.paths["/etc/x"].mode, 0o644);
        assert_eq!(f.paths["/etc/l"].link_target, "/tmp");
        assert_eq!(f.contents["/etc/x"], b"hello\n");
        assert!(f.package_installed("nginx"));
        assert!(!f.package_installed("curl"));
        assert!(f.apt.known.contains("curl"));
        assert!(!f.apt.lists_fresh);
        assert!(f.units["nginx.service"].enabled());
        assert!(!f.units["x.service"].exists());
        assert_eq!(f.users["deploy"].uid, 1000);
        assert_eq!(f.groups["deploy"].members, vec!["www-data", "a"]);
        assert_eq!(f.checks["c1"], 1);
        assert_eq!(f.validations["v1"], ValidationResult { status: 1, output: "boom".into() });
        assert!(complete(&out));
    }

    #[test]
    fn validation_is_skipped_in_sh_when_the_file_already_has_the_content() {
        let mut r = FactRequest::default();
        r.hash("/etc/sudoers.d/x", "abc", true);
        r.validations.push(Validation { id: "v".into(), command: sh!("visudo -cf %s"), content: b"x".to_vec(), unless_current: Some(("/etc/sudoers.d/x".into(), "abc".into())) });
        let s = script(&r);
        let guard = s.find("case \"$pv_sums\" in *'abc  /etc/sudoers.d/x'*) ;; *)").expect("the skip guard");
        assert!(guard < s.find("visudo -cf \"$pv_t\"").expect("the validation"));
        assert!(s.contains(";; esac"));
    }

    #[test]
    fn script_batches_one_call_per_kind() {
        let mut r = FactRequest::default();
        for i in 0..30 {
            r.hash(&format!("/etc/f{i}"), &"0".repeat(64), true);
        }
        r.packages_present.extend(["nginx".to_string(), "curl".to_string()]);
        r.units.insert("nginx.service".into());
        let s = script(&r);
        assert_eq!(s.matches("sha256sum").count(), 1);
        assert_eq!(s.matches("find -P").count(), 1);
        assert_eq!(s.matches("dpkg-query").count(), 1);
        assert_eq!(s.matches("systemctl show").count(), 1);
    }
}
