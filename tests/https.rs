//! HTTPS on the nginx role, read back from testbed hosts: tls1 is the web host, acme1 runs
//! Debian's pebble (a test ACME server) for the acme mode. Every answer is fetched with
//! curl or openssl from this machine, over the testbed's bridge, against the CA the host
//! made, the inventory gave or pebble issued with; nothing is mocked.

mod common;
use common::{address, record, ssh, ssh_output, Project};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const WEB: &str = "tls1";
const ACME: &str = "acme1";
/// What the faye upstream stand-in listens on (the stack role's faye_port).
const FAYE_PORT: u16 = 9293;

/// Puts tls1 back to "nginx never had TLS": no certificates, no site, no certbot state,
/// no websocket stand-in, nothing that a test before left running.
fn reset_web() {
    let out = ssh_output(
        WEB,
        "test -s /run/pv-ws.pid && kill \"$(cat /run/pv-ws.pid)\" 2>/dev/null; rm -f /run/pv-ws.pid; \
         rm -rf /etc/nginx/tls /var/www/letsencrypt /etc/letsencrypt/live /etc/letsencrypt/archive /etc/letsencrypt/renewal \
           /etc/letsencrypt/accounts /etc/systemd/system/certbot.service.d /var/www/flipper; \
         rm -f /etc/nginx/sites-enabled/flipper /etc/nginx/sites-available/flipper; systemctl daemon-reload; \
         if systemctl is-active -q nginx; then systemctl reload nginx; fi; true",
    );
    assert!(out.status.success(), "reset: {}", String::from_utf8_lossy(&out.stderr));
}

/// Resets tls1 when a test ends, passing or not.
struct Cleanup;
impl Drop for Cleanup {
    fn drop(&mut self) {
        reset_web();
        let _ = ssh_output(ACME, "systemctl stop pv-pebble 2>/dev/null; systemctl reset-failed pv-pebble 2>/dev/null; true");
    }
}

/// A project with tls1 as the nginx host and its own puma and faye upstream (nothing
/// listens for puma: the static index.html answers), with `vars` added to the inventory's.
fn project(vars: &str) -> Project {
    let p = Project::new(&[(WEB, &["nginx"])]);
    p.copy_role("stack");
    p.copy_role("nginx");
    set_vars(&p, vars);
    p
}

fn set_vars(p: &Project, vars: &str) {
    p.inventory(&[(WEB, &["nginx"])], &format!("vars:\n  app: flipper\n{vars}groups:\n  puma: [{WEB}]\n  faye: [{WEB}]\n"));
}

/// Runs a command on this machine, returning (success, stdout, stderr).
fn local(program: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} runs: {e}"));
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `curl` from this machine with NAME resolved to tls1 on both ports.
fn curl(name: &str, extra: &[&str]) -> (bool, String, String) {
    let web = address(WEB);
    let r443 = format!("{name}:443:{web}");
    let r80 = format!("{name}:80:{web}");
    let mut args = vec!["-sS", "--max-time", "10", "--resolve", &r443, "--resolve", &r80];
    args.extend_from_slice(extra);
    local("curl", &args)
}

/// Writes a file on a host (as root) from `text`, through ssh's stdin.
fn put(host: &str, path: &str, text: &str) {
    use std::io::Write;
    let dir = common::testbed_dir();
    let mut child = Command::new("ssh")
        .args(["-i", &dir.join("id_ed25519").to_string_lossy(), "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", dir.join("known_hosts").display()))
        .arg(format!("root@{}", address(host)))
        .arg(format!("mkdir -p \"$(dirname {path})\" && cat > {path}"))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("ssh runs");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    assert!(child.wait().expect("ssh ends").success(), "writing {path} on {host}");
}

/// Places a stand-in release's index.html, so `/` answers 200 from nginx's root.
fn place_index(body: &str) {
    put(WEB, "/var/www/flipper/current/public/index.html", &format!("{body}\n"));
}

/// Mode, owner and group of a path on tls1 (`600 root root`).
fn stat(path: &str) -> String {
    ssh(WEB, &format!("stat -c '%a %U %G' {path}")).trim().to_string()
}

#[test]
fn self_signed_https_serves_redirects_and_carries_websockets() {
    let _serial = common::serial();
    let _cleanup = Cleanup;
    reset_web();
    let name = "shop.test";
    let p = project("  nginx_tls: self_signed\n  nginx_server_name: [shop.test, www.shop.test]\n  nginx_hsts_max_age: 300\n");

    // --check first: it says what would change and changes nothing on the host.
    let check = p.run(&["--check"]);
    assert_eq!(check.code, 2, "{}", check.all());
    assert!(check.stdout.contains("/etc/nginx/tls"), "{}", check.all());
    assert_eq!(ssh(WEB, "test -e /etc/nginx/tls && echo present || echo absent").trim(), "absent", "--check created nothing");

    let t = Instant::now();
    let r = p.run(&[]);
    assert_eq!(r.code, 0, "{}", r.all());
    record(&format!("https self_signed: first converge {:.1} s", t.elapsed().as_secs_f64()));
    place_index("hello over tls");

    // The CA, fetched from the host, verifies the served certificate for each name.
    let ca = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(ca.path(), ssh(WEB, "cat /etc/nginx/tls/ca.pem")).expect("write ca");
    let cacert = ca.path().to_str().expect("utf-8 path");
    for n in [name, "www.shop.test"] {
        let (ok, body, err) = curl(n, &["--fail", "--cacert", cacert, &format!("https://{n}/")]);
        assert!(ok && body.trim() == "hello over tls", "{n}: {body} {err}");
    }
    let (ok, _, err) = curl(name, &["--fail", &format!("https://{name}/")]);
    assert!(!ok && err.contains("certificate"), "without the CA the certificate is not trusted: {err}");
    let (_, headers, _) = curl(name, &["-D", "-", "-o", "/dev/null", "--cacert", cacert, &format!("https://{name}/")]);
    assert!(headers.to_ascii_lowercase().contains("strict-transport-security: max-age=300"), "{headers}");

    // Plain HTTP: 301 to the same URL over HTTPS, except ACME challenges.
    let (_, out, _) = curl(name, &["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", &format!("http://{name}/a/b?c=d")]);
    assert_eq!(out, format!("301 https://{name}/a/b?c=d"));
    let (_, out, _) = curl(name, &["-o", "/dev/null", "-w", "%{http_code}", &format!("http://{name}/.well-known/acme-challenge/x")]);
    assert_eq!(out, "404", "a challenge path is served over HTTP, not redirected");

    // Modern TLS only: TLSv1.1 is refused by the server (the client allows it here).
    let tls11 = format!(
        "echo | timeout 10 openssl s_client -connect {}:443 -servername {name} -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' 2>&1",
        address(WEB)
    );
    let (_, out, _) = local("sh", &["-c", &tls11]);
    assert!(out.contains("alert protocol version") && out.contains("Cipher is (NONE)"), "no TLSv1.1 session: {out}");
    let (ok, _, err) = curl(name, &["--fail", "-o", "/dev/null", "--tlsv1.2", "--tls-max", "1.2", "--cacert", cacert, &format!("https://{name}/")]);
    assert!(ok, "TLSv1.2 works: {err}");

    // Private keys: root's, 0600.
    assert_eq!(stat("/etc/nginx/tls/server.key"), "600 root root");
    assert_eq!(stat("/etc/nginx/tls/ca.key"), "600 root root");
    assert_eq!(stat("/etc/nginx/tls/ca.pem"), "644 root root");

    let t = Instant::now();
    let again = p.run(&["--format", "json"]);
    assert_eq!((again.code, again.changes()), (0, 0), "{}", again.all());
    record(&format!("https self_signed: second converge {:.1} s, {} changes", t.elapsed().as_secs_f64(), again.changes()));

    // A websocket handshake through the /faye location over TLS. The upstream stand-in (perl
    // from perl-base, on the faye port of tls1) answers 101 with the Upgrade and Connection
    // headers nginx sent it, then echoes each line it reads: the tunnel carries bytes both
    // ways after the switch.
    let backend = format!(
        "setsid nohup perl -e '$0=\"pv-ws\"; use IO::Socket::INET; \
         my $s=IO::Socket::INET->new(LocalPort=>{FAYE_PORT},Listen=>5,ReuseAddr=>1) or die; \
         while(my $c=$s->accept){{ my %h; while(my $l=<$c>){{ $l=~s/\\r?\\n$//; last if $l eq \"\"; $h{{lc $1}}=$2 if $l=~/^([^:]+):\\s*(.*)$/ }} \
         print $c \"HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nX-Seen-Upgrade: $h{{upgrade}}\\r\\nX-Seen-Connection: $h{{connection}}\\r\\n\\r\\n\"; \
         $c->flush; while(my $l=<$c>){{ print $c \"echo:$l\"; $c->flush }} close $c }}' >/dev/null 2>&1 < /dev/null & echo $! > /run/pv-ws.pid"
    );
    ssh(WEB, &backend);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let client = format!(
        "(printf 'GET /faye HTTP/1.1\\r\\nHost: {name}\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n'; \
         sleep 1; printf 'ping\\n'; sleep 2) | timeout 15 openssl s_client -quiet -no_ign_eof -verify_return_error -CAfile {cacert} -connect {}:443 -servername {name} 2>&1",
        address(WEB)
    );
    let t = Instant::now();
    let (_, out, _) = local("sh", &["-c", &client]);
    assert!(out.contains("HTTP/1.1 101 Switching Protocols"), "{out}");
    assert!(out.contains("X-Seen-Upgrade: websocket"), "nginx forwarded Upgrade: {out}");
    assert!(out.contains("X-Seen-Connection: upgrade"), "nginx forwarded Connection: upgrade: {out}");
    assert!(out.contains("echo:ping"), "bytes flow through the upgraded connection: {out}");
    record(&format!("https self_signed: websocket 101 through /faye over TLS, echo after the switch ({:.1} s with the client's pauses)", t.elapsed().as_secs_f64()));
}

#[test]
fn files_mode_serves_the_inventorys_pair_and_never_prints_the_key() {
    let _serial = common::serial();
    let _cleanup = Cleanup;
    reset_web();
    let name = "files.test";
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (ok, _, err) = local(
        "openssl",
        &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30", "-subj", "/CN=files.test",
          "-addext", "subjectAltName=DNS:files.test", "-keyout", path(&key), "-out", path(&cert)],
    );
    assert!(ok, "{err}");
    let key_text = std::fs::read_to_string(&key).expect("key");
    let key_lines: Vec<&str> = key_text.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!key_lines.is_empty());
    let p = project(&format!(
        "  nginx_tls: files\n  nginx_server_name: {name}\n  nginx_tls_certificate: !cmd \"cat {}\"\n  nginx_tls_key: !cmd \"cat {}\"\n",
        path(&cert),
        path(&key)
    ));
    let leaks = |text: &str| key_lines.iter().any(|l| text.contains(l));

    let check = p.run(&["--check", "-v"]);
    assert_eq!(check.code, 2, "{}", check.all());
    assert!(check.stdout.contains("/etc/nginx/tls/inventory.pem") && check.stdout.contains("(secret)"), "{}", check.all());
    assert!(!leaks(&check.all()), "the key is in --check's output: {}", check.all());
    let r = p.run(&["-v"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!leaks(&r.all()), "the key is in the apply's output: {}", r.all());
    place_index("hello from files");

    let (ok, body, err) = curl(name, &["--fail", "--cacert", path(&cert), &format!("https://{name}/")]);
    assert!(ok && body.trim() == "hello from files", "{body} {err}");
    assert_eq!(stat("/etc/nginx/tls/inventory.pem"), "600 root root");
    let again = p.run(&["--format", "json", "-v"]);
    assert_eq!((again.code, again.changes()), (0, 0), "{}", again.all());
    assert!(!leaks(&again.all()));
    record(&format!("https files: served the inventory's pair, key 0600, {} key lines never printed in 3 runs (-v)", key_lines.len()));
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn hostile_values_are_refused_before_connecting_and_plain_names_pass() {
    // An unreachable host: a value that got as far as connecting would fail otherwise.
    let p = Project::new(&[("unreachable1", &["nginx"])]);
    p.copy_role("stack");
    p.copy_role("nginx");
    let inventory = |vars: &str| p.inventory(&[("unreachable1", &["nginx"])], &format!("vars:\n  app: flipper\n{vars}groups:\n  puma: [unreachable1]\n"));
    let names = ["'", "\"", "\\", "$(id)", "`id`", "a\nb", "-a.test", "a b", "a.test b.test", "a.test;", "*.a.test", "a..test", "a.test}", "é.test", ""];
    let mut cases: Vec<(String, &str)> = Vec::new();
    for mode in ["off", "self_signed", "acme"] {
        for n in names {
            let v = serde_json::to_string(n).expect("json");
            let acme = "  nginx_acme_email: ops@shop.test\n";
            cases.push((format!("  nginx_tls: {mode}\n{acme}  nginx_server_name: {v}\n"), "is not a host name"));
            cases.push((format!("  nginx_tls: {mode}\n{acme}  nginx_server_name: [ok.test, {v}]\n"), "is not a host name"));
        }
    }
    cases.push(("  nginx_server_name: []\n".into(), "no server name"));
    cases.push(("  nginx_tls: on\n".into(), "nginx_tls is"));
    cases.push(("  nginx_tls: \"$(id)\"\n".into(), "nginx_tls is"));
    cases.push(("  nginx_tls: acme\n  nginx_server_name: a.test\n".into(), "needs nginx_acme_email"));
    cases.push(("  nginx_tls: acme\n  nginx_server_name: a.test\n  nginx_acme_email: a@b.test\n  nginx_acme_server: \"http://10.0.0.1/dir\"\n".into(), "needs nginx_acme_email"));
    cases.push(("  nginx_tls: acme\n  nginx_server_name: a.test\n  nginx_acme_email: a@b.test\n  nginx_acme_webroot: \"/var/www/x; root /\"\n".into(), "not a plain absolute path"));
    cases.push(("  nginx_tls: files\n  nginx_server_name: a.test\n".into(), "needs nginx_tls_certificate"));
    for (vars, want) in &cases {
        inventory(vars);
        let r = p.run(&["--check"]);
        assert_eq!(r.code, 1, "{vars:?}: {}", r.all());
        assert!(r.stderr.contains(want), "{vars:?}: {}", r.all());
        // `path:line:column: error: ...`
        let located = r.stderr.lines().filter_map(|l| l.split_once(": error:")).any(|(at, _)| {
            let mut parts = at.rsplitn(3, ':');
            let (col, line) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            !col.is_empty() && !line.is_empty() && col.bytes().chain(line.bytes()).all(|b| b.is_ascii_digit())
        });
        assert!(located, "{vars:?}: the error names file:line: {}", r.all());
        assert!(r.stderr.contains("nothing was changed") && r.stderr.contains("found before connecting"), "{vars:?}: refused before connecting: {}", r.all());
    }
    // Plain names, one or several, in every mode: valid (rendered for the host, not connected).
    for vars in [
        "  nginx_server_name: shop.test\n",
        "  nginx_tls: self_signed\n  nginx_server_name: [shop.test, WWW.Shop.Test, xn--bcher-kva.test, web-1]\n",
        "  nginx_tls: self_signed\n",
        "  nginx_tls: acme\n  nginx_server_name: [shop.test, www.shop.test]\n  nginx_acme_email: ops@shop.test\n",
    ] {
        inventory(vars);
        let r = common::run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
        assert_eq!(r.code, 0, "{vars:?}: {}", r.all());
    }
    record(&format!("https hostile: {} hostile inventories refused before connecting, 4 plain ones valid", cases.len()));
}

/// Makes a CA and a certificate for acme1's address (pebble's HTTPS) in `dir`; returns the
/// CA's PEM, which the inventory gives as nginx_acme_ca_bundle.
fn pebble_tls(dir: &Path, ip: &str) -> String {
    let f = |n: &str| dir.join(n).to_str().expect("utf-8 path").to_string();
    let steps: Vec<Vec<String>> = vec![
        vec!["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=pv test pebble CA", "-keyout", &f("ca.key"), "-out", &f("ca.pem")]
            .into_iter().map(String::from).collect(),
        vec!["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=acme1", "-addext", &format!("subjectAltName=IP:{ip},DNS:acme1"), "-keyout", &f("key.pem"), "-out", &f("req.csr")]
            .into_iter().map(String::from).collect(),
        vec!["x509", "-req", "-in", &f("req.csr"), "-CA", &f("ca.pem"), "-CAkey", &f("ca.key"), "-days", "2", "-copy_extensions", "copy", "-out", &f("cert.pem")]
            .into_iter().map(String::from).collect(),
    ];
    for s in steps {
        let args: Vec<&str> = s.iter().map(String::as_str).collect();
        let (ok, _, err) = local("openssl", &args);
        assert!(ok, "openssl {args:?}: {err}");
    }
    std::fs::read_to_string(dir.join("ca.pem")).expect("ca")
}

#[test]
fn acme_mode_gets_pebbles_certificate_and_certbot_renews_it() {
    let _serial = common::serial();
    let _cleanup = Cleanup;
    reset_web();
    let name = "acme.test";
    let acme_ip = address(ACME);

    // pebble on acme1: HTTPS with a certificate of our own test CA, HTTP-01 checked on port
    // 80 of the name, which resolves (acme1's /etc/hosts) to tls1 only.
    let t = Instant::now();
    let out = ssh_output(ACME, "command -v pebble >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pebble >/dev/null; }");
    assert!(out.status.success(), "pebble installs: {}", String::from_utf8_lossy(&out.stderr));
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = pebble_tls(dir.path(), &acme_ip);
    put(ACME, "/etc/pv-pebble/cert.pem", &std::fs::read_to_string(dir.path().join("cert.pem")).expect("cert"));
    put(ACME, "/etc/pv-pebble/key.pem", &std::fs::read_to_string(dir.path().join("key.pem")).expect("key"));
    put(
        ACME,
        "/etc/pv-pebble/config.json",
        r#"{"pebble": {"listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
            "certificate": "/etc/pv-pebble/cert.pem", "privateKey": "/etc/pv-pebble/key.pem",
            "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": false}}"#,
    );
    let hosts_line = format!("{} {name}", address(WEB));
    let start = format!(
        "grep -qxF '{hosts_line}' /etc/hosts || echo '{hosts_line}' >> /etc/hosts; systemctl stop pv-pebble 2>/dev/null; systemctl reset-failed pv-pebble 2>/dev/null;          systemd-run -q --unit=pv-pebble -E PEBBLE_VA_NOSLEEP=1 -E PEBBLE_WFE_NONCEREJECT=0 /usr/bin/pebble -config /etc/pv-pebble/config.json &&          for i in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/14000) 2>/dev/null && exit 0; sleep 0.2; done; journalctl -u pv-pebble --no-pager | tail; exit 1"
    );
    let out = ssh_output(ACME, &start);
    assert!(out.status.success(), "pebble runs: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    record(&format!("https acme: pebble up on acme1 in {:.1} s", t.elapsed().as_secs_f64()));

    let bundle = serde_json::to_string(&ca).expect("json");
    let p = project(&format!(
        "  nginx_tls: acme
  nginx_server_name: {name}
  nginx_acme_email: ops@acme.test
  nginx_acme_server: https://{acme_ip}:14000/dir
  nginx_acme_ca_bundle: {bundle}
"
    ));
    let check = p.run(&["--check"]);
    assert_eq!(check.code, 2, "{}", check.all());
    assert_eq!(ssh(WEB, "test -e /etc/nginx/tls && echo present || echo absent").trim(), "absent", "--check created nothing");
    let t = Instant::now();
    let r = p.run(&[]);
    assert_eq!(r.code, 0, "{}", r.all());
    record(&format!("https acme: first converge (certbot, issuance by pebble) {:.1} s", t.elapsed().as_secs_f64()));
    place_index("hello from acme");

    // pebble's root (random per start), from its management port, verifies what tls1 serves.
    let ca_file = dir.path().join("ca.pem");
    let (ok, root, err) = local("curl", &["-sS", "--fail", "--cacert", path(&ca_file), &format!("https://{acme_ip}:15000/roots/0")]);
    assert!(ok && root.contains("BEGIN CERTIFICATE"), "{err}");
    let root_file = dir.path().join("pebble-root.pem");
    std::fs::write(&root_file, &root).expect("write root");
    let (ok, body, err) = curl(name, &["--fail", "--cacert", path(&root_file), &format!("https://{name}/")]);
    assert!(ok && body.trim() == "hello from acme", "{body} {err}");
    let issuer = format!(
        "echo | openssl s_client -connect {}:443 -servername {name} 2>/dev/null | openssl x509 -noout -issuer",
        address(WEB)
    );
    let (_, issuer, _) = local("sh", &["-c", &issuer]);
    assert!(issuer.contains("Pebble Intermediate"), "served by pebble's chain: {issuer}");
    assert_eq!(stat("/etc/nginx/tls/server.key"), "600 root root");
    let (_, out, _) = curl(name, &["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", &format!("http://{name}/")]);
    assert_eq!(out, format!("301 https://{name}/"));

    let again = p.run(&["--format", "json"]);
    assert_eq!((again.code, again.changes()), (0, 0), "{}", again.all());

    // Renewals: certbot's timer is enabled and active; the command its service runs, with
    // its environment (the CA drop-in) and --dry-run, renews against pebble.
    assert_eq!(ssh(WEB, "systemctl is-enabled certbot.timer; systemctl is-active certbot.timer"), "enabled\nactive\n");
    let exec = ssh(WEB, "systemctl show -p ExecStart --value certbot.service");
    let argv = exec.split("argv[]=").nth(1).and_then(|s| s.split(" ;").next()).map(str::trim).unwrap_or_default().to_string();
    assert!(argv.starts_with("/usr/bin/certbot") && argv.contains("renew"), "{exec}");
    let env = ssh(WEB, "systemctl show -p Environment --value certbot.service");
    assert!(env.contains("REQUESTS_CA_BUNDLE=/etc/nginx/tls/acme-ca.pem"), "{env}");
    // certbot's --dry-run puts Let's Encrypt's staging URL in place of the lineage's server
    // unless --server is given, so the dry run names pebble again: no test traffic leaves
    // the testbed.
    let t = Instant::now();
    let server = format!("--server=https://{acme_ip}:14000/dir");
    let out = ssh_output(WEB, &format!("env {} {argv} --dry-run {server}", env.trim()));
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    record(&format!("https acme: `{argv} --dry-run` (the timer's service) renewed against pebble in {:.1} s; second converge 0 changes", t.elapsed().as_secs_f64()));

    // A real renewal, the timer's command as it is plus --force-renewal (the lineage's own
    // server): the deploy hook puts the new certificate in force, and provision then finds
    // nothing to change.
    let serial = || {
        let cmd = format!("echo | openssl s_client -connect {}:443 -servername {name} 2>/dev/null | openssl x509 -noout -serial", address(WEB));
        local("sh", &["-c", &cmd]).1
    };
    let before = serial();
    let out = ssh_output(WEB, &format!("env {} {argv} --force-renewal", env.trim()));
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let after = serial();
    assert!(before.starts_with("serial=") && after.starts_with("serial=") && before != after, "the renewed certificate is served: {before} {after}");
    let (ok, _, err) = curl(name, &["--fail", "-o", "/dev/null", "--cacert", path(&root_file), &format!("https://{name}/")]);
    assert!(ok, "{err}");
    let third = p.run(&["--format", "json"]);
    assert_eq!((third.code, third.changes()), (0, 0), "{}", third.all());
}
