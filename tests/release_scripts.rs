//! The release scripts run with a local sh against a temp dir (no host needed): lock,
//! upload once, unpack, links, switch, keep_releases, unlock, the health check with and
//! without curl. The same scripts on real hosts are in tests/stack_release.rs.

use provision::artifact::{artifact, Source};
use provision::deploy_lock::holder_is_dead_here;
use provision::release_scripts::*;
use provision::runner::Out;
use provision::shell::Script;
use std::path::Path;
use std::time::Duration;

fn cfg(dir: &Path) -> HostCfg {
    HostCfg {
        deploy_to: dir.to_string_lossy().into_owned(),
        deploy_user: "nobody-such-user".into(),
        keep_releases: 2,
        linked_files: vec!["config/database.yml".into()],
        linked_dirs: vec!["log".into(), "tmp/pids".into()],
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

fn sh(script: &str) -> Out {
    let o = std::process::Command::new("sh").arg("-c").arg(script).output().expect("sh");
    let mut out = Out { status: o.status.code(), stderr: String::from_utf8_lossy(&o.stderr).into_owned(), ..Default::default() };
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        match l.strip_prefix("@@PV ") {
            Some(m) => out.marks.push(m.to_string()),
            None => out.other.push(l.to_string()),
        }
    }
    out
}

fn art(content: &str) -> Artifact {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("app.rb"), content).unwrap();
    std::fs::create_dir_all(src.path().join("log")).unwrap();
    std::fs::create_dir_all(src.path().join("public/assets")).unwrap();
    std::fs::write(src.path().join(format!("public/assets/{content}.css")), content).unwrap();
    artifact(&Source::Dir(src.path().to_path_buf()), Some(content)).unwrap()
}

/// The release scripts, run with a local sh against a temp dir: lock, upload once,
/// unpack, links, switch, keep_releases, unlock. (The real hosts are in tests/release.rs.)
#[test]
fn scripts_work_on_a_local_tree() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(&d.path().join("app"));
    let a1 = art("v1");
    let p = sh(&lock_script(&c, "tok1", "me", "ctl", 1, "", Some(&a1.sha256)));
    assert!(p.mark("lock taken").is_some(), "{p:?}");
    assert!(p.mark("have-artifact").is_none());
    // A second locker is refused and told who holds it.
    let q = sh(&lock_script(&c, "tok2", "other", "ctl", 2, "", None));
    assert!(q.mark("lock held").unwrap().contains("who=me"), "{q:?}");
    // Breaking by token recovers it.
    let q = sh(&lock_script(&c, "tok2", "other", "ctl", 2, "tok1", None));
    assert!(q.mark("lock recovered").is_some(), "{q:?}");
    let u = sh(&format!("{}{}", header(&c).as_str(), unlock_lines("tok1").as_str()));
    assert!(u.mark("unlocked").is_none(), "only the holder unlocks");
    sh(&format!("{}{}", header(&c).as_str(), unlock_lines("tok2").as_str()));

    let mut names = Vec::new();
    let mut last = None;
    for (i, v) in ["v1", "v2", "v3", "v4"].iter().enumerate() {
        let a = art(v);
        let p = sh(&lock_script(&c, "t", "me", "ctl", 1, "", Some(&a.sha256)));
        let ts = format!("2026010100000{i}");
        let o = sh(&prepare_script(&c, &ts, &a, p.mark("have-artifact").is_none()));
        assert!(o.mark("prepared").is_some(), "{o:?}");
        let o = sh(&switch_script(&c, &ts, true));
        assert!(o.mark("switched").is_some(), "{o:?}");
        let o = sh(&finish_script(&c, "t", &format!("release {ts}"), true));
        assert!(o.mark("unlocked").is_some(), "{o:?}");
        names.push(ts);
        last = Some(a);
    }
    let rel = d.path().join("app/releases");
    let mut kept: Vec<String> = std::fs::read_dir(&rel).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    kept.sort();
    assert_eq!(kept, names[2..].to_vec());
    let cur = std::fs::read_link(d.path().join("app/current")).unwrap();
    assert!(cur.ends_with(&names[3]));
    assert_eq!(std::fs::read_to_string(d.path().join("app/current/app.rb")).unwrap(), "v4");
    assert_eq!(std::fs::read_to_string(d.path().join("app/current/REVISION")).unwrap().trim(), "v4");
    assert!(std::fs::symlink_metadata(d.path().join("app/current/log")).unwrap().file_type().is_symlink());
    assert!(std::fs::symlink_metadata(d.path().join("app/current/tmp/pids")).unwrap().file_type().is_symlink());
    assert!(std::fs::symlink_metadata(d.path().join("app/current/config/database.yml")).unwrap().file_type().is_symlink());
    // Assets: each release has its own and the one before's, never older ones.
    let assets: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(d.path().join("app/current/public/assets")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    };
    assert_eq!(assets, vec!["v3.css", "v4.css"]);
    let log = std::fs::read_to_string(d.path().join("app/revisions.log")).unwrap();
    assert_eq!(log.lines().count(), 4);
    // Artifacts of removed releases are removed too.
    assert_eq!(std::fs::read_dir(d.path().join("app/.artifacts")).unwrap().count(), 2);
    // The same artifact again is not uploaded again.
    let a = last.expect("an artifact");
    let p = sh(&lock_script(&c, "t", "me", "ctl", 1, "", Some(&a.sha256)));
    assert!(p.mark("have-artifact").is_some(), "{p:?}");
    // A corrupt upload is refused.
    let mut bad = art("v5");
    bad.bytes[20] ^= 0xff;
    let o = sh(&prepare_script(&c, "20260101000009", &bad, true));
    assert!(o.mark("prepared").is_none() && o.status != Some(0), "{o:?}");
    // Rolling back by switching to an older release keeps the others.
    let o = sh(&switch_script(&c, &names[2], true));
    assert!(o.mark("switched").is_some());
    assert!(std::fs::read_link(d.path().join("app/current")).unwrap().ends_with(&names[2]));
    let o = sh(&list_script(&c));
    assert_eq!(o.mark("current"), Some(names[2].as_str()));
}

#[test]
fn a_dead_runs_unfinished_release_is_removed() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(&d.path().join("app"));
    let a = art("v1");
    sh(&lock_script(&c, "t1", "me", "ctl", 1, "", None));
    assert!(sh(&prepare_script(&c, "20260101000001", &a, true)).mark("prepared").is_some());
    // The run dies here; the next one breaks its lock and removes the release.
    let p = sh(&lock_script(&c, "t2", "me", "ctl", 1, "t1", None));
    assert_eq!(p.mark("orphan"), Some("20260101000001"), "{p:?}");
    assert!(!d.path().join("app/releases/20260101000001").exists());
    // A release that went live before the run died stays.
    assert!(sh(&prepare_script(&c, "20260101000002", &a, false)).mark("prepared").is_some());
    assert!(sh(&switch_script(&c, "20260101000002", true)).mark("switched").is_some());
    let p = sh(&lock_script(&c, "t3", "me", "ctl", 1, "t2", None));
    assert!(p.mark("orphan").is_none(), "{p:?}");
    assert!(d.path().join("app/releases/20260101000002").exists());
}

/// The health check against a local server, with curl and with bash's /dev/tcp.
#[test]
fn health_check_with_and_without_curl() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut c) = conn else { continue };
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let mut req = String::new();
            let mut buf = [0u8; 1024];
            while !req.contains("\r\n\r\n") {
                match std::io::Read::read(&mut c, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
            // /up answers 503 twice, then 200; /down always 500.
            let code = if req.starts_with("GET /up ") && n >= 2 { "200 OK" } else if req.starts_with("GET /up ") { "503 No" } else { "500 No" };
            let _ = std::io::Write::write_all(&mut c, format!("HTTP/1.1 {code}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes());
            let _ = c.shutdown(std::net::Shutdown::Write);
            let _ = std::io::Read::read(&mut c, &mut buf);
        }
    });
    let up = sh(&health_lines(&format!("http://127.0.0.1:{port}/up"), 5, 0, 2));
    assert!(up.mark("healthy").is_some_and(|h| h.contains("try 3")), "{up:?}");
    let down = sh(&health_lines(&format!("http://127.0.0.1:{port}/down"), 2, 0, 2));
    assert!(down.mark("unhealthy").is_some_and(|h| h.contains("500")), "{down:?}");
    assert_eq!(down.status, Some(5));
    // Without curl: bash's /dev/tcp.
    let nocurl = format!("curl() {{ return 127; }}\ncommand() {{ [ \"$2\" = curl ] && return 1; builtin command \"$@\"; }}\n{}", health_lines(&format!("http://127.0.0.1:{port}/down"), 1, 0, 2).as_str());
    let o = sh(&nocurl);
    assert!(o.mark("unhealthy").is_some_and(|h| h.contains("tcp")), "{o:?}");
    let nocurl = format!("command() {{ [ \"$2\" = curl ] && return 1; builtin command \"$@\"; }}\n{}", health_lines(&format!("http://127.0.0.1:{port}/up"), 3, 0, 2).as_str());
    let o = sh(&nocurl);
    assert!(o.mark("healthy").is_some_and(|h| h.contains("tcp")), "{o:?}");
}

#[test]
fn expired_lock_is_recovered() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(&d.path().join("app"));
    c.lock_ttl = 60;
    let lock = d.path().join("app/.deploy-lock");
    std::fs::create_dir_all(&lock).unwrap();
    std::fs::write(lock.join("info"), "token=old\nwho=ghost\nexpires=1000\n").unwrap();
    let p = sh(&lock_script(&c, "new", "me", "ctl", 1, "", None));
    assert!(p.mark("lock recovered").unwrap().contains("who=ghost"), "{p:?}");
}

#[test]
fn dead_holder_on_this_controller() {
    assert_eq!(holder_is_dead_here("token=abc who=x controller=me pid=999999999 started=1", "me"), Some("abc".into()));
    assert_eq!(holder_is_dead_here("token=abc controller=other pid=999999999", "me"), None);
}

#[test]
fn migration_script_runs_in_the_release() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(&d.path().join("app"));
    std::fs::create_dir_all(d.path().join("app/releases/1")).unwrap();
    let o = sh(&migrate_script(&c, "1", &Script::user_code("pwd; echo migrated")));
    assert_eq!(o.status, Some(0), "{o:?}");
    assert!(o.other.iter().any(|l| l.ends_with("/app/releases/1")), "{o:?}");
}
