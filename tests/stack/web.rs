//! The sandbox's web1 serves HTTPS (`nginx_tls: self_signed`, inventories/sandbox.yml): every
//! request of the stack test goes through it with curl, verifying web1's certificate against
//! the sandbox CA read from web1 itself; port 80 only redirects. Issue 13, must-show 2 (the
//! ACME mode is tests/https.rs, against pebble).

use super::{sh, WEB};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The name web1's certificate carries (`nginx_server_name: _` names the host).
const NAME: &str = "web1";

/// The sandbox CA's certificate, copied from web1 once.
fn ca() -> &'static PathBuf {
    static CA: OnceLock<PathBuf> = OnceLock::new();
    CA.get_or_init(|| {
        let pem = sh("web1", "cat /etc/nginx/tls/ca.pem");
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "web1's CA: {pem}");
        let path = std::env::temp_dir().join(format!("pv-stack-ca-{}.pem", std::process::id()));
        std::fs::write(&path, format!("{pem}\n")).expect("write the CA");
        path
    })
}

/// curl to web1 (the name resolved to its testbed address, nothing looked up); its stdout.
fn curl(args: &[&str]) -> Result<String, String> {
    assert!(WEB.starts_with("10.77.0."), "test traffic goes to testbed addresses only");
    let o = Command::new("curl")
        .args(["-sS", "-m", "15", "--resolve", &format!("{NAME}:443:{WEB}"), "--resolve", &format!("{NAME}:80:{WEB}")])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    if !o.status.success() {
        return Err(format!("curl {args:?}: {}", String::from_utf8_lossy(&o.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// One HTTPS request to web1, its certificate checked against the sandbox CA; (status, body).
pub fn http(method: &str, path: &str, body: Option<(&str, &str)>) -> Result<(u16, String), String> {
    let url = format!("https://{NAME}{path}");
    let ca = ca().to_string_lossy().into_owned();
    let mut args = vec!["--cacert", ca.as_str(), "-X", method, "-w", "\n%{http_code}", "-H", "User-Agent: provision-stack-test"];
    let content_type;
    if let Some((ctype, b)) = body {
        content_type = format!("Content-Type: {ctype}");
        args.extend(["-H", content_type.as_str(), "--data-binary", b]);
    }
    args.push(&url);
    let out = curl(&args)?;
    let (body, status) = out.rsplit_once('\n').ok_or_else(|| format!("no status in {out:?}"))?;
    Ok((status.trim().parse().map_err(|_| format!("no HTTP status in {out:?}"))?, body.to_string()))
}

/// Port 80 answers with a redirect to the same URL over HTTPS, and a client that does not
/// trust the sandbox CA is refused.
pub fn redirect_and_certificate() {
    let out = curl(&["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", &format!("http://{NAME}/jobs?x=1")]).expect("GET over HTTP");
    assert_eq!(out, format!("301 https://{NAME}/jobs?x=1"), "port 80 on web1");
    let untrusted = curl(&["-o", "/dev/null", &format!("https://{NAME}/")]);
    assert!(untrusted.is_err_and(|e| e.contains("certificate")), "a client without the sandbox CA was not refused");
    assert_eq!(sh("web1", "stat -c '%a %U' /etc/nginx/tls/server.key /etc/nginx/tls/ca.key"), "600 root\n600 root");
}

/// A websocket handshake with the real faye on faye1, through nginx's /faye over TLS.
pub fn faye_websocket_over_tls() {
    let client = format!(
        "printf 'GET /faye HTTP/1.1\\r\\nHost: {NAME}\\r\\nConnection: Upgrade\\r\\nUpgrade: websocket\\r\\nSec-WebSocket-Version: 13\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\n\\r\\n' | timeout 10 openssl s_client -quiet -verify_return_error -CAfile {} -connect {WEB}:443 -servername {NAME} 2>&1",
        ca().display()
    );
    let o = Command::new("sh").args(["-c", &client]).output().expect("openssl s_client");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("HTTP/1.1 101 Switching Protocols"), "websocket upgrade through web1 over TLS:\n{out}");
    assert!(out.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "faye's own accept key:\n{out}");
}

/// Issue 12, must-show 1: the page's fingerprinted stylesheet is served by nginx from the
/// release's public/assets (its /assets/ location: far-future headers, nginx's access log),
/// never by puma (the app's log does not have it).
pub fn fingerprinted_asset_from_nginx(page: &str) {
    let css = page
        .split('"')
        .find(|s| s.starts_with("/assets/application-") && s.ends_with(".css"))
        .unwrap_or_else(|| panic!("no fingerprinted stylesheet in the page:\n{page}"))
        .to_string();
    let ca = ca().to_string_lossy().into_owned();
    let headers = curl(&["--cacert", &ca, "-D", "-", "-o", "/dev/null", &format!("https://{NAME}{css}")]).expect("GET the stylesheet");
    assert!(headers.starts_with("HTTP/1.1 200"), "{css}:\n{headers}");
    let lower = headers.to_ascii_lowercase();
    assert!(lower.contains("cache-control: max-age=315360000") && lower.contains("expires: thu, 31 dec 2037"), "far-future headers of nginx's /assets/ location:\n{headers}");
    assert!(!lower.contains("x-served-by"), "puma answered {css}:\n{headers}");
    assert_ne!(sh("web1", &format!("grep -c 'GET {css} ' /var/log/nginx/access.log || true")), "0", "nginx's access log lacks {css}");
    for h in ["app1", "app2"] {
        assert_eq!(sh(h, &format!("grep -c '{css}' /var/www/shop/shared/log/sandbox.log || true")), "0", "{h}'s app log has {css}: puma served it");
    }
}
