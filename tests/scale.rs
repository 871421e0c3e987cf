//! Loading cost is linear in the hosts: `validate` of 2N hosts costs about twice N, not four
//! times (it was quadratic: every task of every host converted the whole inventory's
//! `hosts`, and every variable searched the inventory's text for its own position). A ratio,
//! not an absolute time, so it holds on any machine; of CPU time (user + system of the
//! child), not wall time, so other work on the machine does not count; the best of five
//! runs each (with three, the ratio varied from 1.6 to 2.3 over CI runs). Nothing connects:
//! the addresses are a documentation range.

mod common;
use std::path::Path;
use std::time::Duration;

/// A stack inventory of `n` hosts shaped like production: two web, a primary and a replica,
/// redis with one worker, a tenth sidekiq, two faye, the rest puma.
fn inventory(n: usize) -> String {
    let mut s = String::from(
        "stage: staging\nvars:\n  app: flipper\n  secret_key_base: !secret scale-test-key-base-0123456789\n  mysql_app_password: !secret scale-pw-1\n  mysql_replication_password: !secret scale-pw-2\n  redis_password: !secret scale-pw-3\nhosts:\n",
    );
    for i in 1..=n {
        let (roles, extra) = match i {
            1 | 2 => ("nginx", ""),
            3 => ("mysql", ", primary: true"),
            4 => ("mysql", ""),
            5 => ("redis, example_release, sidekiq", ""),
            i if i <= n / 10 => ("example_release, sidekiq", ""),
            i if i <= n / 10 + 2 => ("faye", ""),
            _ => ("example_release, puma", ""),
        };
        s.push_str(&format!("  h{i}: {{address: 192.0.2.1, port: {}, roles: [{roles}]{extra}}}\n", 1000 + i));
    }
    s
}

/// CPU time (user + system) of the children this process has waited for, so far.
fn children_cpu() -> Duration {
    // SAFETY: getrusage writes into the struct we own; RUSAGE_CHILDREN is a valid target.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn best_of_five(dir: &Path, inv: &str) -> Duration {
    (0..5)
        .map(|_| {
            let before = children_cpu();
            let r = common::run_provision(dir, &["validate", inv], &[]);
            let took = children_cpu().saturating_sub(before);
            assert_eq!(r.code, 0, "validate {inv}: {}", r.all());
            took
        })
        .min()
        .unwrap_or_default()
}

#[test]
fn validate_cost_is_linear_in_the_hosts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::os::unix::fs::symlink(repo.join("roles"), dir.path().join("roles")).expect("link roles");
    std::os::unix::fs::symlink(repo.join("examples"), dir.path().join("examples")).expect("link examples");
    std::fs::create_dir_all(dir.path().join("inventories")).expect("mkdir");
    let n = 150;
    std::fs::write(dir.path().join("inventories/n.yml"), inventory(n)).expect("write");
    std::fs::write(dir.path().join("inventories/2n.yml"), inventory(2 * n)).expect("write");
    let one = best_of_five(dir.path(), "inventories/n.yml");
    let two = best_of_five(dir.path(), "inventories/2n.yml");
    let ratio = two.as_secs_f64() / one.as_secs_f64();
    common::record(&format!(
        "scale: validate of {} hosts {:.2} s CPU, {} hosts {:.2} s CPU (debug build): ratio {ratio:.2}",
        n,
        one.as_secs_f64(),
        2 * n,
        two.as_secs_f64()
    ));
    assert!(ratio <= 2.5, "validate of {} hosts took {ratio:.2}x the time of {n}: loading is not linear", 2 * n);
}
