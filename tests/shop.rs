//! End-to-end: examples/shop, a Rails 6.1 app on Debian 12's packaged gems, converged and
//! released by provision on testbed hosts of its own:
//!
//!     tests/testbed.sh up sh-web1=10.77.0.61 sh-app1=10.77.0.62 sh-db1=10.77.0.63 \
//!         sh-app2=10.77.0.64 sh-db2=10.77.0.65 sh-pdb1=10.77.0.66
//!
//! sh-web1: nginx + faye; sh-app1: puma + sidekiq + redis + mail; sh-app2: puma; sh-db1:
//! MariaDB (primary), sh-db2 its replica; sh-pdb1: a production stage's MariaDB. The
//! firewall role on the staging hosts, so every path the app takes (faye from the app host too) is
//! one the firewall opens.
//! examples/shop is released as it is in the repository with `provision release --dir`: the
//! release builds its assets on the controller in a clean copy, runs the bundle step and the
//! migrations (release_migrate's default) before the health gate. A second release with a
//! new migration and the same Gemfile.lock runs under load: the bundle step is skipped, the
//! migration runs once, no request fails.
//!
//! Mail: sh-app1 has the mail role (exim4 keeping every message in /var/mail/mailcatch): the
//! job's mail is read there, and exim's log shows local delivery only.
//!
//! One test, in steps, because each step starts from the state the one before left.

mod common;
use common::wait_for;

use common::{address, ssh_output, Project};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const WEB: &str = "sh-web1";
const APP: &str = "sh-app1";
const DB: &str = "sh-db1";
const APP2: &str = "sh-app2";
const DB2: &str = "sh-db2";
/// The production stage's database host, the source of `provision db-copy`.
const PROD_DB: &str = "sh-pdb1";
const DEPLOY_TO: &str = "/var/www/shop";
const DB_NAME: &str = "shop_staging";
const INTERCEPT: &str = "admins@example.com";

/// Runs `cmd` on `host` as root; fails the test unless it exits 0.
fn sh(host: &str, cmd: &str) -> String {
    let out = ssh_output(host, cmd);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "on {host}: `{cmd}` failed\nstdout: {stdout}\nstderr: {stderr}");
    stdout.trim().to_string()
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

/// The project: the stack's roles and an inventory for the sh- hosts, stage staging,
/// secrets with hostile characters (as inventories/sandbox.yml), root with the testbed key.
fn project() -> Project {
    let p = Project::new(&[]);
    for r in ["stack", "app", "nginx", "faye", "redis", "puma", "sidekiq", "mysql", "firewall", "mail"] {
        p.copy_role(r);
    }
    let tb = common::testbed_dir();
    let inv = format!(
        r##"stage: staging
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
  release_health_retries: 10
  release_health_interval: 1
hosts:
  {WEB}:
    address: {web}
    roles: [firewall, nginx, faye]
  {APP}:
    address: {app}
    roles: [firewall, mail, redis, puma, sidekiq]
  {APP2}:
    address: {app2}
    roles: [firewall, puma]
  {DB}:
    address: {db}
    roles: [firewall, mysql]
    primary: true
  {DB2}:
    address: {db2}
    roles: [firewall, mysql]
"##,
        key = tb.join("id_ed25519").display(),
        known = tb.join("known_hosts").display(),
        web = address(WEB),
        app = address(APP),
        db = address(DB),
        app2 = address(APP2),
        db2 = address(DB2),
    );
    p.write("inventories/test.yml", &inv);
    p
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
    common::record(&format!("shop: first converge of the 5 staging hosts: {:.0} s", started.elapsed().as_secs_f64()));
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

    // 2. Release v1 of examples/shop as it is in the repository: the release builds its
    // assets on the controller in a clean copy (release_assets: auto), runs the bundle step
    // on the app host and the migrations once (release_migrate's default, bin/rails
    // db:migrate), all before the health gate.
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop");
    assert!(!app.join("public/assets").exists(), "examples/shop has built assets in the repository");
    let started = Instant::now();
    let r = common::run_provision(p.dir.path(), &[], &["release", "inventories/test.yml", "--dir", &app.to_string_lossy(), "--revision", "v1"]);
    println!("{}", r.all());
    assert_eq!(r.code, 0, "release v1:\n{}", r.all());
    assert!(!app.join("public/assets").exists(), "the release built its assets in the repository's tree");
    assert!(r.stdout.contains("assets:precompile"), "the release built the assets:\n{}", r.stdout);
    assert!(r.stdout.contains(&format!("migrations on {APP}")), "{}", r.stdout);
    common::record(&format!("shop: release v1 (assets built on the controller, bundle, migrations, health gate, switch): {:.1} s", started.elapsed().as_secs_f64()));
    for h in [WEB, APP, APP2] {
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
    assert!(page.contains("<title>shop (staging)</title>"), "config/environments/staging.rb names the stage:\n{page}");
    // The released tree's bundle resolves for the deploy user, against the system's gems.
    let check = sh(APP, &format!("cd {DEPLOY_TO}/current && runuser -u deploy -- bundle check"));
    assert!(check.contains("dependencies are satisfied"), "{check}");
    let (_, h, body) = curl(&jar, &[&format!("{base}/up")]);
    assert_eq!((status(&h), body.as_str()), (200, "up\n"));
    // nginx balances the page over both app hosts.
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let (_, h, _) = curl(&jar, &[&format!("{base}/")]);
        served.insert(header(&h, "x-served-by").unwrap_or_default().to_string());
    }
    assert_eq!(served, [APP, APP2].iter().map(|s| s.to_string()).collect(), "12 requests through {WEB} were served by {served:?}");

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
    let local = sh(WEB, &format!("cat {DEPLOY_TO}/current/public{css}"));
    assert_eq!(body.trim_end(), local, "nginx serves the file the release shipped");
    assert!(header(&h, "expires").is_some_and(|e| e.contains("2037")), "far-future Expires from nginx's /assets/ location:\n{h}");
    assert!(h.to_ascii_lowercase().contains("cache-control: max-age=315360000"), "{h}");
    assert!(header(&h, "x-served-by").is_none(), "puma answered {css}:\n{h}");
    let access = sh(WEB, &format!("grep -c 'GET {css} ' /var/log/nginx/access.log || true"));
    assert_ne!(access, "0", "nginx's access log has {css}");
    let puma_log = sh(APP, &format!("grep -c 'GET \"{css}\"' {DEPLOY_TO}/shared/log/staging.log || true"));
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
    let q = format!("mysql -NBe \"SELECT worker FROM {DB_NAME}.job_runs WHERE job_id = '{job}'\"");
    wait_for(60, &format!("the row replicated to {DB2}"), || (sh(DB2, &q) == APP).then_some(()));
    let (_, h, shown) = curl(&jar, &[&format!("{base}{}", location.trim_start_matches(&base))]);
    assert_eq!(status(&h), 200, "{h}");
    assert!(shown.contains("tea &amp; &lt;biscuits&gt;") && shown.contains(&format!("confirmed by {APP}")), "{shown}");

    // 6. The mail: To rewritten to MAIL_INTERCEPT_TO, the buyer kept in X-Original-To.
    let log = sh(APP, &format!("grep -c 'Delivered mail' {DEPLOY_TO}/shared/log/staging.log || true"));
    assert_ne!(log, "0", "the app's log shows the mail delivered to sendmail");
    // The mail role's exim on sh-app1 kept it in the local mailbox: To is the intercept
    // address, the buyer is only in X-Original-To, and exim delivered locally, nothing else.
    let mbox = wait_for(30, "the mail in /var/mail/mailcatch", || {
        let m = String::from_utf8_lossy(&ssh_output(APP, "cat /var/mail/mailcatch 2>/dev/null").stdout).replace('\r', "");
        m.contains(buyer).then_some(m)
    });
    assert!(mbox.lines().any(|l| l == format!("To: {INTERCEPT}")), "To is the intercept address:\n{mbox}");
    assert!(mbox.lines().any(|l| l == format!("X-Original-To: {buyer}")), "X-Original-To keeps the buyer:\n{mbox}");
    assert!(mbox.contains("Subject: [staging] Order #"), "{mbox}");
    let exim = sh(APP, "cat /var/log/exim4/mainlog");
    let deliveries: Vec<&str> = exim.lines().filter(|l| l.contains(" => ") || l.contains(" -> ")).collect();
    assert!(!deliveries.is_empty(), "exim delivered nothing:\n{exim}");
    for d in &deliveries {
        assert!(d.contains(" R=provision_catch_all T=provision_catch_all") && !d.contains(" H="), "a delivery that is not local: {d}");
    }
    assert!(deliveries.iter().all(|d| !d.contains(buyer)), "exim delivered to the buyer:\n{exim}");

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

    // 9. Release v2: the same Gemfile.lock and a new migration, under load through nginx.
    // The bundle step is skipped (and says so), the migration runs once, on the app host,
    // and no request fails while puma's workers are replaced.
    let v2 = tempfile::tempdir().expect("tempdir");
    let st = Command::new("cp").arg("-a").arg(app.join(".")).arg(v2.path()).status().expect("cp");
    assert!(st.success(), "copying examples/shop");
    std::fs::write(
        v2.path().join("db/migrate/20261202000003_add_gift_note_to_orders.rb"),
        "class AddGiftNoteToOrders < ActiveRecord::Migration[6.1]\n  def change\n    add_column :orders, :gift_note, :string\n  end\nend\n",
    )
    .expect("write the migration");
    let load = Load::start(&web);
    let r = common::run_provision(p.dir.path(), &[], &["release", "inventories/test.yml", "--dir", &v2.path().to_string_lossy(), "--revision", "v2"]);
    let (ok, failed) = load.finish();
    println!("{}", r.all());
    assert_eq!(r.code, 0, "release v2:\n{}", r.all());
    common::record(&format!("shop: LOAD during release v2 (new migration, same Gemfile.lock): {ok} requests ok, {failed} failed"));
    assert_eq!(failed, 0, "requests failed during release v2");
    assert!(ok > 20, "the load ran ({ok} requests)");
    assert!(r.stdout.contains("Gemfile.lock unchanged, skipped"), "the bundle step was not skipped:\n{}", r.stdout);
    assert_eq!(sh(DB, &format!("mysql -NBe \"SHOW COLUMNS FROM {DB_NAME}.orders LIKE 'gift_note'\" | cut -f1")), "gift_note");
    assert_eq!(sh(DB, &format!("mysql -NBe 'SELECT COUNT(*) FROM {DB_NAME}.schema_migrations'")), "3");
    let column = format!("mysql -NBe \"SHOW COLUMNS FROM {DB_NAME}.orders LIKE 'gift_note'\" | cut -f1");
    wait_for(60, &format!("the new column replicated to {DB2}"), || (sh(DB2, &column) == "gift_note").then_some(()));
    assert!(!r.stdout.contains(&format!("{APP2}: == ")), "{APP2} ran a migration:\n{}", r.stdout);
    assert_eq!(r.stdout.matches(&format!("{APP}: == 20261202000003 AddGiftNoteToOrders: migrating")).count(), 1, "the migration ran once, on {APP}:\n{}", r.stdout);
    assert_eq!(r.stdout.matches("AddGiftNoteToOrders: migrating").count(), 1, "the migration ran on one host:\n{}", r.stdout);
    assert_eq!(sh(WEB, &format!("cat {DEPLOY_TO}/current/REVISION")), "v2");

    db_copy_from_production_keeps_the_mail_intercepted(&p, &jar, &base);

    // 10. A second converge changes nothing (the release left the services as the roles want).
    let started = Instant::now();
    let r = p.run(&[]);
    assert_eq!(r.code, 0, "the second converge:\n{}", r.all());
    let summary = r.stdout.lines().find(|l| l.contains(" hosts: ")).unwrap_or_default().to_string();
    common::record(&format!("shop: second converge after the release: {:.1} s, {summary}", started.elapsed().as_secs_f64()));
    assert!(r.stdout.contains("; 0 changes"), "the second converge changed something:\n{}", r.all());
}

/// GET / (the page, rendered by puma) through nginx, over and over on 4 threads, each request its own connection,
/// until finished: (answered 200, anything else).
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<(usize, usize)>>,
}

impl Load {
    fn start(web: &str) -> Load {
        use std::io::{Read, Write};
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..4)
            .map(|_| {
                let (stop, addr) = (stop.clone(), format!("{web}:80"));
                std::thread::spawn(move || {
                    let (mut ok, mut failed) = (0, 0);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let answer = (|| -> std::io::Result<String> {
                            let mut s = std::net::TcpStream::connect_timeout(&addr.parse().expect("address"), Duration::from_secs(5))?;
                            s.set_read_timeout(Some(Duration::from_secs(15)))?;
                            s.write_all(b"GET / HTTP/1.0\r\nHost: shop\r\n\r\n")?;
                            let mut text = String::new();
                            s.read_to_string(&mut text)?;
                            Ok(text)
                        })();
                        match answer {
                            Ok(t) if t.starts_with("HTTP/1.1 200") => ok += 1,
                            _ => failed += 1,
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        Load { stop, threads }
    }

    fn finish(self) -> (usize, usize) {
        std::thread::sleep(Duration::from_secs(2));
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.threads.into_iter().map(|t| t.join().unwrap_or((0, 1))).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }
}

/// `provision db-copy` from a production-stage inventory (sh-pdb1, a customer's order in its
/// database) into this staging one: the production row arrives on sh-db1 (and replicates),
/// and staging's mail still goes to the administrators, never to a customer.
fn db_copy_from_production_keeps_the_mail_intercepted(p: &Project, jar: &Path, base: &str) {
    let tb = common::testbed_dir();
    p.write(
        "inventories/production.yml",
        &format!(
            "stage: production\nssh:\n  identity_file: {}\n  known_hosts: {}\nvars:\n  app: shop\n  mysql_innodb_buffer_pool_share: 0.01\nhosts:\n  {PROD_DB}:\n    address: {}\n    roles: [mysql]\n    primary: true\n",
            tb.join("id_ed25519").display(),
            tb.join("known_hosts").display(),
            address(PROD_DB)
        ),
    );
    let r = common::run_provision(p.dir.path(), &[], &["inventories/production.yml"]);
    assert_eq!(r.code, 0, "the production database host:\n{}", r.all());
    // Production's schema is staging's (the same releases, so the same migrations applied);
    // a customer's order in it.
    let schema = sh(DB, &format!("{{ mysqldump --no-data --skip-comments {DB_NAME}; mysqldump --no-create-info --skip-comments {DB_NAME} schema_migrations ar_internal_metadata; }} | base64 -w0"));
    sh(PROD_DB, &format!("echo {schema} | base64 -d | mysql shop_production"));
    let customer = "real.customer@example.net";
    sh(PROD_DB, &format!("mysql shop_production -e \"INSERT INTO orders (email, item, quantity, created_at, updated_at) VALUES ('{customer}', 'production tea', 3, NOW(), NOW())\""));

    let started = Instant::now();
    let r = common::run_provision(p.dir.path(), &[], &["db-copy", "--from", "inventories/production.yml", "--to", "inventories/test.yml"]);
    assert_eq!(r.code, 0, "db-copy production -> staging:\n{}", r.all());
    common::record(&format!("shop: db-copy from the production stage ({PROD_DB}) into staging ({DB}): {:.1} s", started.elapsed().as_secs_f64()));
    let q = format!("mysql -NBe \"SELECT COUNT(*) FROM {DB_NAME}.orders WHERE email = '{customer}'\"");
    assert_eq!(sh(DB, &q), "1", "the production order is in staging's database");
    wait_for(60, &format!("the copy replicated to {DB2}"), || (sh(DB2, &q) == "1").then_some(()));

    // An order on staging after the copy: its mail lands in the local mailbox, addressed to
    // the administrators; the production customer is in no delivery.
    let (_, _, page) = curl(jar, &[&format!("{base}/")]);
    let token = page.split("name=\"authenticity_token\" value=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default().to_string();
    let buyer = "after.copy@shop.example.org";
    let (_, h, body) = curl(
        jar,
        &["--data-urlencode", &format!("authenticity_token={token}"), "--data-urlencode", &format!("order[email]={buyer}"), "--data-urlencode", "order[item]=copied tea", &format!("{base}/orders")],
    );
    assert_eq!(status(&h), 303, "POST /orders after the copy:\n{h}{body}");
    let mbox = wait_for(60, "the mail after the copy", || {
        let m = String::from_utf8_lossy(&ssh_output(APP, "cat /var/mail/mailcatch 2>/dev/null").stdout).replace('\r', "");
        m.contains(&format!("X-Original-To: {buyer}")).then_some(m)
    });
    let last = &mbox[mbox.rfind("\nFrom ").unwrap_or(0)..];
    assert!(last.lines().any(|l| l == format!("To: {INTERCEPT}")), "after db-copy, staging's mail goes to {INTERCEPT}:\n{last}");
    let exim = sh(APP, "cat /var/log/exim4/mainlog");
    assert!(!exim.contains(customer), "exim saw the production customer:\n{exim}");
}
