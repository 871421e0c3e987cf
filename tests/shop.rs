//! End-to-end: examples/shop, a Rails 6.1 app on Debian 12's packaged gems, converged and
//! released by provision on three testbed hosts of its own:
//!
//!     tests/testbed.sh up sh-web1=10.77.0.61 sh-app1=10.77.0.62 sh-db1=10.77.0.63
//!
//! sh-web1: nginx + faye; sh-app1: puma + sidekiq + redis; sh-db1: MariaDB (primary); the
//! firewall role on all three, so every path the app takes (faye from the app host too) is
//! one the firewall opens.
//! The assets are precompiled on the controller (this machine: Debian 12 with the gems of
//! tests/run.sh's apt list), into a copy of examples/shop that is then released with
//! `provision release --dir COPY --revision v1`, its migrations run by `release_migrate`.
//!
//! Mail: there is no MTA role yet. The test puts a stand-in /usr/sbin/sendmail on sh-app1
//! (only where none exists) that keeps what it is handed, arguments and message, in
//! /var/spool/shop-sendmail/; the checks read that, and the app's own log ("Delivered mail").
//!
//! One test, in steps, because each step starts from the state the one before left.

mod common;

use common::{address, ssh_output, Project};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const WEB: &str = "sh-web1";
const APP: &str = "sh-app1";
const DB: &str = "sh-db1";
const DEPLOY_TO: &str = "/var/www/shop";
const DB_NAME: &str = "shop_sandbox";
const INTERCEPT: &str = "admins@example.com";

/// Runs `cmd` on `host` as root; fails the test unless it exits 0.
fn sh(host: &str, cmd: &str) -> String {
    let out = ssh_output(host, cmd);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "on {host}: `{cmd}` failed\nstdout: {stdout}\nstderr: {stderr}");
    stdout.trim().to_string()
}

/// Polls `f` every 500 ms until it returns Some, or fails with `what` after `secs`.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// curl on the controller with `args`; (exit code, headers, body). Cookies in `jar`.
fn curl(jar: &Path, args: &[&str]) -> (i32, String, String) {
    let body = tempfile::NamedTempFile::new().expect("tempfile");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D", "-", "-o"])
        .arg(body.path())
        .arg("-c")
        .arg(jar)
        .arg("-b")
        .arg(jar)
        .args(args)
        .output()
        .expect("curl runs");
    let text = std::fs::read_to_string(body.path()).unwrap_or_default();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), text)
}

fn status(headers: &str) -> u16 {
    headers.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The value of `"key":"value"` in a JSON body.
fn json_str(body: &str, key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get(key)?.as_str().map(String::from)
}

/// The project: the stack's roles and an inventory for the three sh- hosts, stage sandbox,
/// secrets with hostile characters (as inventories/sandbox.yml), root with the testbed key.
fn project() -> Project {
    let p = Project::new(&[]);
    for r in ["stack", "app", "nginx", "faye", "redis", "puma", "sidekiq", "mysql", "firewall"] {
        p.copy_role(r);
    }
    let tb = common::testbed_dir();
    let inv = format!(
        r##"stage: sandbox
ssh:
  identity_file: {key}
  known_hosts: {known}
vars:
  app: shop
  secret_key_base: !secret "shop-test-secret-key-base-0123456789abcdef0123456789abcdef"
  mysql_app_password: !secret "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{{|}}~"
  mysql_replication_password: !secret "~}}|{{zyxwvutsrqponmlkjihgfedcba`_^]\\[ZYXWVUTSRQPONMLKJIHGFEDCBA@?>=<;:9876543210/.-,+*)('&%$#\"!"
  redis_password: !secret " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{{|}}~ redis 0"
  mysql_innodb_buffer_pool_share: 0.01
  app_mail_intercept: {INTERCEPT}
  # A Rails app: sidekiq requires config/environment.rb of the directory.
  sidekiq_require: .
  release_migrate: bin/rails db:migrate
  release_health_retries: 10
  release_health_interval: 1
hosts:
  {WEB}:
    address: {web}
    roles: [firewall, nginx, faye]
  {APP}:
    address: {app}
    roles: [firewall, redis, puma, sidekiq]
  {DB}:
    address: {db}
    roles: [firewall, mysql]
"##,
        key = tb.join("id_ed25519").display(),
        known = tb.join("known_hosts").display(),
        web = address(WEB),
        app = address(APP),
        db = address(DB),
    );
    p.write("inventories/test.yml", &inv);
    p
}

/// A copy of examples/shop with its assets precompiled on the controller, as a deploy
/// builds it: RAILS_ENV is the stage, SECRET_KEY_BASE a dummy, no database anywhere.
fn built_app(into: &Path) -> std::path::PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop");
    let dir = into.join("shop-v1");
    let st = Command::new("cp").arg("-a").arg(&src).arg(&dir).status().expect("cp");
    assert!(st.success(), "cp -a {} {}", src.display(), dir.display());
    let started = Instant::now();
    let out = Command::new("bin/rails")
        .arg("assets:precompile")
        .current_dir(&dir)
        .env("RAILS_ENV", "sandbox")
        .env("SECRET_KEY_BASE", "dummy-only-for-assets")
        .env_remove("DATABASE_URL")
        .output()
        .expect("bin/rails runs (tests/run.sh installs ruby-rails, ruby-sprockets-rails, bundler)");
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "assets:precompile on the controller failed:\n{all}");
    common::record(&format!("shop: assets:precompile on the controller: {:.1} s", started.elapsed().as_secs_f64()));
    assert!(!dir.join("config/database.yml").exists(), "database.yml comes from shared/, not the artifact");
    let assets: Vec<String> = std::fs::read_dir(dir.join("public/assets"))
        .expect("public/assets")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for ext in [".css", ".js"] {
        assert!(
            assets.iter().any(|a| a.starts_with("application-") && a.ends_with(ext) && a.len() == "application-".len() + 64 + ext.len()),
            "no fingerprinted application{ext} in public/assets: {assets:?}"
        );
    }
    assert!(assets.iter().any(|a| a.starts_with(".sprockets-manifest-")), "{assets:?}");
    dir
}

#[test]
fn shop_rails_app_on_the_stack() {
    let _serial = common::serial();
    let p = project();
    let web = address(WEB);
    let base = format!("http://{web}");
    let jar_dir = tempfile::tempdir().expect("tempdir");
    let jar = jar_dir.path().join("cookies");

    // 1. Converge. Nothing is released yet: puma and sidekiq wait for `current`.
    let started = Instant::now();
    let r = p.run(&[]);
    assert_eq!(r.code, 0, "the first converge:\n{}", r.all());
    common::record(&format!("shop: first converge of sh-web1, sh-app1, sh-db1: {:.0} s", started.elapsed().as_secs_f64()));
    let env = sh(APP, "cat /etc/shop/shop.env");
    assert!(env.contains(&format!("MAIL_INTERCEPT_TO={INTERCEPT}")), "{env}");
    assert!(env.contains(&format!("FAYE_URL=http://{web}:9293/faye")), "FAYE_URL names the faye host:\n{env}");
    let rules = sh(WEB, "nft list chain inet provision input");
    assert!(rules.contains("policy drop;"), "{rules}");
    let faye_rule = rules.lines().find(|l| l.contains("dport 9293")).unwrap_or_default();
    assert!(faye_rule.contains(&address(APP)), "the firewall lets the app host publish to faye: {faye_rule:?}\n{rules}");
    // The Gemfile.lock resolves against the gems the app role installed, as the release
    // step's bundle check would.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop");
    let mut copy = String::from("set -e\nrm -rf /tmp/shop-gems; mkdir /tmp/shop-gems; cd /tmp/shop-gems\n");
    for name in ["Gemfile", "Gemfile.lock"] {
        let text = std::fs::read_to_string(root.join(name)).expect(name);
        assert!(!text.contains("PV_SHOP_EOF"), "{name}");
        copy.push_str(&format!("cat > {name} <<'PV_SHOP_EOF'\n{text}PV_SHOP_EOF\n"));
    }
    sh(APP, &copy);
    let check = sh(APP, "cd /tmp/shop-gems && bundle check && bundle install --local --quiet && echo resolved");
    assert!(check.ends_with("resolved"), "{check}");
    let lock = std::fs::read_to_string(root.join("Gemfile.lock")).expect("Gemfile.lock");
    assert_eq!(sh(APP, "cat /tmp/shop-gems/Gemfile.lock"), lock.trim(), "bundle install --local rewrote the lock on {APP}");

    // The mail stand-in (no MTA role yet): keeps what sendmail is handed.
    sh(
        APP,
        "test -e /usr/sbin/sendmail || { install -d -m 1777 /var/spool/shop-sendmail; printf '%s\\n' '#!/bin/sh' \
         '# test stand-in for an MTA (tests/shop.rs): keeps the arguments and the message' \
         'f=/var/spool/shop-sendmail/$(date +%s%N).$$' '{ printf \"X-Test-Sendmail-Args: %s\\n\" \"$*\"; cat; } > \"$f.tmp\" && mv \"$f.tmp\" \"$f.eml\"' \
         > /usr/sbin/sendmail; chmod 755 /usr/sbin/sendmail; }",
    );
    let stand_in = sh(APP, "grep -c 'test stand-in' /usr/sbin/sendmail || true") == "1";

    // 2. Release v1: the Rails app with its precompiled assets; the migrations run.
    let app = built_app(p.dir.path());
    let started = Instant::now();
    let r = common::run_provision(p.dir.path(), &[], &["release", "inventories/test.yml", "--dir", &app.to_string_lossy(), "--revision", "v1"]);
    println!("{}", r.all());
    assert_eq!(r.code, 0, "release v1:\n{}", r.all());
    common::record(&format!("shop: release v1 (migrations, health gate, switch): {:.1} s", started.elapsed().as_secs_f64()));
    for h in [WEB, APP] {
        assert_eq!(sh(h, &format!("cat {DEPLOY_TO}/current/REVISION")), "v1", "{h}");
    }
    let tables = sh(DB, &format!("mysql -NBe 'SHOW TABLES FROM {DB_NAME}' | sort | tr '\\n' ' '"));
    for t in ["job_runs", "orders", "schema_migrations"] {
        assert!(tables.split(' ').any(|x| x == t), "db:migrate made {t} on {DB}: {tables}");
    }
    assert_eq!(sh(DB, &format!("mysql -NBe 'SELECT COUNT(*) FROM {DB_NAME}.schema_migrations'")), "2");

    // 3. The page, through nginx on sh-web1, rendered by puma on sh-app1.
    let (code, h, page) = curl(&jar, &[&format!("{base}/")]);
    assert_eq!((code, status(&h)), (0, 200), "GET /:\n{h}{page}");
    assert_eq!(header(&h, "x-served-by"), Some(APP), "{h}");
    assert_eq!(header(&h, "x-revision"), Some("v1"), "{h}");
    assert!(page.contains(&format!("<strong id=\"host\">{APP}</strong>")), "{page}");
    assert!(page.contains("<title>shop (sandbox)</title>"), "config/environments/sandbox.rb names the stage:\n{page}");
    // The released tree's bundle resolves for the deploy user, against the system's gems.
    let check = sh(APP, &format!("cd {DEPLOY_TO}/current && runuser -u deploy -- bundle check"));
    assert!(check.contains("dependencies are satisfied"), "{check}");
    let (_, h, body) = curl(&jar, &[&format!("{base}/up")]);
    assert_eq!((status(&h), body.as_str()), (200, "up\n"));

    // 4. A fingerprinted asset from the page, served by nginx (its /assets/ location's
    // far-future headers; nginx's access log has it, puma's log does not).
    let css = page
        .split('"')
        .find(|s| s.starts_with("/assets/application-") && s.ends_with(".css"))
        .unwrap_or_else(|| panic!("no stylesheet link in the page:\n{page}"))
        .to_string();
    assert!(page.contains("/assets/application-") && page.contains(".js\""), "the page links application.js:\n{page}");
    let (_, h, body) = curl(&jar, &[&format!("{base}{css}")]);
    assert_eq!(status(&h), 200, "GET {css}:\n{h}");
    let local = std::fs::read_to_string(app.join("public").join(css.trim_start_matches('/'))).expect("the built asset");
    assert_eq!(body, local, "nginx serves the file built on the controller");
    assert!(header(&h, "expires").is_some_and(|e| e.contains("2037")), "far-future Expires from nginx's /assets/ location:\n{h}");
    assert!(h.to_ascii_lowercase().contains("cache-control: max-age=315360000"), "{h}");
    assert!(header(&h, "x-served-by").is_none(), "puma answered {css}:\n{h}");
    let access = sh(WEB, &format!("grep -c 'GET {css} ' /var/log/nginx/access.log || true"));
    assert_ne!(access, "0", "nginx's access log has {css}");
    let puma_log = sh(APP, &format!("grep -c 'GET \"{css}\"' {DEPLOY_TO}/shared/log/sandbox.log || true"));
    assert_eq!(puma_log, "0", "the app's log has {css}: puma served it");

    // 5. The form: POST /orders with the page's CSRF token enqueues the job; sidekiq on
    // sh-app1 runs it, writing a row on sh-db1 and handing the mail to sendmail.
    let token = page
        .split("name=\"authenticity_token\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no authenticity_token in the form:\n{page}"))
        .to_string();
    let buyer = "buyer.test@shop.example.org";
    let (code, h, body) = curl(
        &jar,
        &[
            "--data-urlencode",
            &format!("authenticity_token={token}"),
            "--data-urlencode",
            &format!("order[email]={buyer}"),
            "--data-urlencode",
            "order[item]=tea & <biscuits>",
            "--data-urlencode",
            "order[quantity]=2",
            &format!("{base}/orders"),
        ],
    );
    assert_eq!((code, status(&h)), (0, 303), "POST /orders:\n{h}{body}");
    let location = header(&h, "location").unwrap_or_default().to_string();
    let job = location.split("job=").nth(1).unwrap_or_default().to_string();
    assert!(job.len() == 36 && job.chars().all(|c| c.is_ascii_hexdigit() || c == '-'), "job id in {location}");
    let started = Instant::now();
    let ran = wait_for(90, &format!("job {job} to run"), || {
        let (_, h, b) = curl(&jar, &[&format!("{base}/jobs/{job}")]);
        (status(&h) == 200).then_some(b)
    });
    common::record(&format!("shop: form POST to job row (sidekiq on {APP}, mail handed over): {:.1} s", started.elapsed().as_secs_f64()));
    assert_eq!(json_str(&ran, "worker").as_deref(), Some(APP), "{ran}");
    assert_eq!(json_str(&ran, "mailed_to").as_deref(), Some(INTERCEPT), "{ran}");
    let row = sh(DB, &format!("mysql -NBe \"SELECT r.worker, o.email, o.item FROM {DB_NAME}.job_runs r JOIN {DB_NAME}.orders o ON o.id = r.order_id WHERE r.job_id = '{job}'\""));
    assert_eq!(row, format!("{APP}\t{buyer}\ttea & <biscuits>"), "the row on {DB}");
    let (_, h, shown) = curl(&jar, &[&format!("{base}{}", location.trim_start_matches(&base))]);
    assert_eq!(status(&h), 200, "{h}");
    assert!(shown.contains("tea &amp; &lt;biscuits&gt;") && shown.contains(&format!("confirmed by {APP}")), "{shown}");

    // 6. The mail: To rewritten to MAIL_INTERCEPT_TO, the buyer kept in X-Original-To.
    let log = sh(APP, &format!("grep -c 'Delivered mail' {DEPLOY_TO}/shared/log/sandbox.log || true"));
    assert_ne!(log, "0", "the app's log shows the mail delivered to sendmail");
    if stand_in {
        let mail = sh(APP, &format!("grep -l -- {buyer:?} /var/spool/shop-sendmail/*.eml | head -n 1 | xargs cat")).replace('\r', "");
        assert!(mail.lines().any(|l| l == format!("To: {INTERCEPT}")), "To is the intercept address:\n{mail}");
        assert!(mail.lines().any(|l| l == format!("X-Original-To: {buyer}")), "X-Original-To keeps the buyer:\n{mail}");
        let args = mail.lines().next().unwrap_or_default();
        assert!(args.contains(INTERCEPT) && !args.contains(buyer), "the envelope goes to the intercept address only: {args}");
        assert!(mail.contains("Subject: [sandbox] Order #"), "{mail}");
    } else {
        println!("/usr/sbin/sendmail is a real MTA on {APP}: the mail's headers were checked through the app's log and row only");
    }

    // 7. POST /jobs (JSON, no form) keeps flipper's contract.
    let (_, h, body) = curl(&jar, &["-X", "POST", &format!("{base}/jobs")]);
    assert_eq!(status(&h), 202, "POST /jobs:\n{h}{body}");
    let id = json_str(&body, "id").unwrap_or_else(|| panic!("no id in {body}"));
    let ran = wait_for(60, &format!("job {id}"), || {
        let (_, h, b) = curl(&jar, &[&format!("{base}/jobs/{id}")]);
        (status(&h) == 200).then_some(b)
    });
    assert_eq!(json_str(&ran, "worker").as_deref(), Some(APP), "{ran}");

    // 8. Faye: the app publishes server-side (Net::HTTP to FAYE_URL); faye answers success.
    let (_, h, body) = curl(&jar, &["--data-urlencode", "text=new stock", &format!("{base}/announcements")]);
    assert_eq!(status(&h), 200, "POST /announcements:\n{h}{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["published"], true, "{body}");
    assert_eq!(v["faye"][0]["successful"], true, "{body}");

    // 9. A second converge changes nothing (the release left the services as the roles want).
    let started = Instant::now();
    let r = p.run(&[]);
    assert_eq!(r.code, 0, "the second converge:\n{}", r.all());
    let summary = r.stdout.lines().find(|l| l.contains(" hosts: ")).unwrap_or_default().to_string();
    common::record(&format!("shop: second converge after the release: {:.1} s, {summary}", started.elapsed().as_secs_f64()));
    assert!(r.stdout.contains("; 0 changes"), "the second converge changed something:\n{}", r.all());
}
