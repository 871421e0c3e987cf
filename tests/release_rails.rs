//! End-to-end: a real Rails app (tests/fixtures/rails_app, made by Debian 12's `rails new`)
//! released by `provision release` with the Rails defaults: assets precompiled on the
//! controller in a copy of --dir, `bundle install --local` in the new release (skipped
//! when Gemfile.lock did not change), `bin/rails db:migrate` on the primary release host,
//! the health gate on the Rails app's /up. Hosts: rr-app1 (app, puma) and rr-db1 (mysql,
//! primary): `tests/testbed.sh up rr-app1=10.77.0.71 rr-db1=10.77.0.72`. The controller
//! needs ruby-rails, bundler, ruby-sprockets-rails, ruby-mysql2, puma and ruby-sd-notify
//! (tests/run.sh installs them). Outcomes are read back from the hosts.
//!
//! One test, in steps, because each step starts from the state the one before left.

mod common;

use common::{address, record, run_provision, ssh, Run};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const D: &str = "/var/www/shop";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cp(from: &Path, to: &Path) {
    let st = Command::new("cp").arg("-a").arg(from).arg(to).status().expect("cp");
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

fn run(dir: &Path, args: &[&str]) -> Run {
    let r = run_provision(dir, &[], args);
    println!("$ provision {}\n{}", args.join(" "), r.all());
    r
}

/// `bundle lock --local` in `app`: a Gemfile.lock of the controller's system gems.
fn lock(app: &Path) {
    let o = Command::new("bundle").args(["lock", "--local"]).current_dir(app).output().expect("bundle runs (apt-get install bundler)");
    assert!(o.status.success(), "bundle lock --local in {}: {}{}", app.display(), String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}

fn current(host: &str) -> String {
    ssh(host, &format!("basename \"$(readlink {D}/current)\"")).trim().to_string()
}

fn releases(host: &str) -> Vec<String> {
    ssh(host, &format!("ls -1 {D}/releases | grep -E '^[0-9]{{14}}$'")).lines().map(String::from).collect()
}

/// The `ran=` of the current release's bundle marker: the release where bundle last ran.
fn bundled_in(host: &str) -> String {
    ssh(host, &format!("sed -n 's/^ran=//p' {D}/current/.pv-bundled")).trim().to_string()
}

#[test]
fn a_rails_app_released_with_assets_bundle_and_migrations() {
    let _serial = common::serial();
    let fixture = repo().join("tests/fixtures/rails_app");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    cp(&repo().join("roles"), &p.join("roles"));
    std::fs::create_dir_all(p.join("inventories")).expect("mkdir");
    std::fs::create_dir_all(p.join("apps")).expect("mkdir");
    let tb = common::testbed_dir();
    let inv = [
        "stage: production".to_string(),
        "ssh:".into(),
        format!("  identity_file: {}", tb.join("id_ed25519").display()),
        format!("  known_hosts: {}", tb.join("known_hosts").display()),
        "vars:".into(),
        "  app: shop".into(),
        "  secret_key_base: !secret \"rails-release-test-secret-key-base-0123456789abcdef\"".into(),
        "  mysql_app_password: !secret \"rr-app-pw-5d2c\"".into(),
        "  redis_password: !secret \"rr-redis-pw\"".into(),
        "  app_packages: [ruby, puma, ruby-sd-notify, ruby-mysql2, ruby-rack, curl, ruby-rails, bundler, ruby-sprockets-rails]".into(),
        "  release_health_retries: 5".into(),
        "  release_health_interval: 1".into(),
        "hosts:".into(),
        "  rr-app1:".into(),
        format!("    address: {}", address("rr-app1")),
        "    roles: [puma]".into(),
        "  rr-db1:".into(),
        format!("    address: {}", address("rr-db1")),
        "    roles: [mysql]".into(),
        "    primary: true".into(),
    ]
    .join("\n")
        + "\n";
    std::fs::write(p.join("inventories/test.yml"), inv).expect("write");

    // v1: the fixture with a Gemfile.lock; v2: a new stylesheet, the same Gemfile.lock;
    // v3: a Gemfile with one more (Debian-installed) gem, so a different Gemfile.lock;
    // bad: v3 whose Gemfile.lock asks for a puma that no host has.
    let app = |v: &str| p.join("apps").join(v);
    cp(&fixture, &app("v1"));
    lock(&app("v1"));
    cp(&app("v1"), &app("v2"));
    std::fs::write(app("v2").join("app/assets/stylesheets/application.css"), "/* v2 */\nbody { color: #456; }\n").expect("write");
    cp(&app("v2"), &app("v3"));
    let gemfile = std::fs::read_to_string(app("v3").join("Gemfile")).expect("Gemfile");
    std::fs::write(app("v3").join("Gemfile"), format!("{gemfile}gem 'nio4r'\n")).expect("write");
    lock(&app("v3"));
    cp(&app("v3"), &app("bad"));
    let lockfile = std::fs::read_to_string(app("bad").join("Gemfile.lock")).expect("lock");
    let broken: String = lockfile.lines().map(|l| if l.starts_with("    puma (") { "    puma (99.0.0)".to_string() } else { l.to_string() }).collect::<Vec<_>>().join("\n") + "\n";
    assert_ne!(lockfile, broken, "no puma in the Gemfile.lock");
    std::fs::write(app("bad").join("Gemfile.lock"), broken).expect("write");

    // Fresh state for this test's counts (a rerun on the same hosts too).
    ssh("rr-app1", &format!("systemctl stop puma 2>/dev/null; rm -rf {D}/current {D}/releases/* {D}/.artifacts {D}/.deploy-lock; true"));
    ssh("rr-db1", "mysql -e 'DROP DATABASE IF EXISTS shop_production' 2>/dev/null; true");
    let t = Instant::now();
    let r = run(p, &["inventories/test.yml"]);
    assert_eq!(r.code, 0, "the hosts must converge first");
    record(&format!("release_rails: converge of rr-app1 rr-db1 in {:.0} s", t.elapsed().as_secs_f64()));

    // v1: assets built on the controller, bundle ran, migrations ran on the primary release host.
    let t = Instant::now();
    let r = run(p, &["release", "inventories/test.yml", "--dir", &app("v1").to_string_lossy(), "--revision", "v1"]);
    assert_eq!(r.code, 0, "v1 must release");
    record(&format!("release_rails: v1 (assets, bundle, migrations, cold start) in {:.1} s", t.elapsed().as_secs_f64()));
    assert!(r.stdout.contains("assets built on the controller: `bin/rails assets:precompile` with RAILS_ENV=production"), "{}", r.stdout);
    assert!(!app("v1").join("public/assets").exists() && !app("v1").join("tmp").exists(), "the user's tree was written by the assets build");
    let v1 = current("rr-app1");
    let css = ssh("rr-app1", &format!("ls {D}/releases/{v1}/public/assets/ | grep -E '^application-[0-9a-f]{{64}}\\.css$'"));
    assert_eq!(css.lines().count(), 1, "the fingerprinted stylesheet is in the release: {css}");
    assert!(ssh("rr-app1", &format!("cat {D}/releases/{v1}/public/assets/{}", css.trim())).contains("#123"));
    assert!(r.stdout.contains("rr-app1: bundle: `bundle install --local` ran"), "{}", r.stdout);
    assert_eq!(bundled_in("rr-app1"), v1);
    assert!(r.stdout.contains("[4/8] migrations on rr-app1"), "{}", r.stdout);
    let versions = ssh("rr-db1", "mysql -N -e 'SELECT version FROM shop_production.schema_migrations'");
    assert!(versions.contains("20260101000000"), "the migration ran: {versions:?}");
    let widgets = ssh("rr-app1", &format!("curl -s http://{}:3000/widgets", address("rr-app1")));
    assert_eq!(widgets.trim(), "0 widgets", "the released Rails app serves from its database");

    // v2, the same Gemfile.lock: bundle skipped (said in human and JSON output), not run on the host.
    let r = run(p, &["release", "inventories/test.yml", "--dir", &app("v2").to_string_lossy(), "--revision", "v2", "--format", "json"]);
    assert_eq!(r.code, 0, "v2 must release");
    let skipped = r.stdout.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).any(|e| {
        e["event"] == "host" && e["host"] == "rr-app1" && e["text"].as_str().is_some_and(|t| t.contains("bundle: Gemfile.lock unchanged, skipped"))
    });
    assert!(skipped, "no JSON event says the bundle was skipped:\n{}", r.stdout);
    let v2 = current("rr-app1");
    assert_ne!(v2, v1);
    assert_eq!(bundled_in("rr-app1"), v1, "v2's marker must name v1, where bundle last ran");
    assert!(ssh("rr-app1", &format!("cat {D}/releases/{v2}/public/assets/application-*.css")).contains("#456"), "v2's stylesheet");

    // v3, a changed Gemfile.lock: bundle runs again.
    let r = run(p, &["release", "inventories/test.yml", "--dir", &app("v3").to_string_lossy(), "--revision", "v3"]);
    assert_eq!(r.code, 0, "v3 must release");
    assert!(r.stdout.contains("rr-app1: bundle: `bundle install --local` ran"), "{}", r.stdout);
    let v3 = current("rr-app1");
    assert_eq!(bundled_in("rr-app1"), v3);

    // bad: its bundle step fails, so nothing is switched and the release is removed.
    let before = releases("rr-app1");
    let r = run(p, &["release", "inventories/test.yml", "--dir", &app("bad").to_string_lossy(), "--revision", "bad", "-e", "release_assets=off"]);
    assert_eq!(r.code, 1, "a failed bundle step fails the release");
    assert!(r.all().contains("the bundle step failed, so nothing was switched:\n  rr-app1: `bundle install --local` failed: exit status 7"), "{}", r.all());
    assert!(r.all().contains("99.0.0"), "the failure shows bundler's output:\n{}", r.all());
    assert_eq!(current("rr-app1"), v3, "current must not change");
    assert_eq!(releases("rr-app1"), before, "the failed release must be removed");
    assert_eq!(ssh("rr-app1", &format!("test -e {D}/.deploy-lock && echo locked")).trim(), "");
    assert!(!r.all().contains("[4/8] migrations on"), "no migration after a failed bundle step");
    let widgets = ssh("rr-app1", &format!("curl -s http://{}:3000/widgets", address("rr-app1")));
    assert_eq!(widgets.trim(), "0 widgets", "v3 still serves");
}
