//! The `common` role on a testbed host, read back: security updates on (and off again),
//! chrony skipped in a container (the host's own `systemd-detect-virt` says it is one),
//! the app's logs rotated for real with copytruncate, a second run with no change, and a
//! path that could add a logrotate directive refused before anything connects.

mod common;
use common::{run_provision, ssh, Project};

const H: &str = "t2";

/// Leaves t2's apt timers idle and its firewall (which common brings) gone, whatever happens:
/// the suite's other tests install packages and open ports
/// there, and a daily upgrade holding dpkg's lock would make them wait.
struct Idle;
impl Drop for Idle {
    fn drop(&mut self) {
        let _ = common::ssh_output(H, "printf 'APT::Periodic::Update-Package-Lists \"0\";\\nAPT::Periodic::Unattended-Upgrade \"0\";\\n' > /etc/apt/apt.conf.d/20auto-upgrades; rm -rf /var/www/flipper/shared/log/pv-rotate.log*; nft flush ruleset; systemctl disable -q nftables 2>/dev/null; rm -f /etc/nftables.conf; true");
    }
}

#[test]
fn the_base_of_every_host() {
    let _serial = common::serial();
    let _idle = Idle;
    let p = Project::new(&[(H, &["common"])]);
    p.copy_role("stack");
    p.copy_role("common");
    p.copy_role("firewall");
    let inv = std::fs::read_to_string(p.path("inventories/test.yml")).expect("inventory");
    p.write("inventories/test.yml", &format!("{inv}vars: {{app: flipper}}\n"));

    let r = p.run(&["--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(ssh(H, "apt-config dump APT::Periodic::Unattended-Upgrade"), "APT::Periodic::Unattended-Upgrade \"1\";\n");
    assert!(ssh(H, "dpkg-query -W -f='${Status}' unattended-upgrades").contains("ok installed"));
    // The firewall comes with common: inbound dropped but SSH (open to everyone by default).
    assert!(ssh(H, "nft list chain inet provision input").contains("policy drop;"), "no firewall on {H}");
    assert_eq!(ssh(H, "apt-config dump Unattended-Upgrade::Automatic-Reboot"), "Unattended-Upgrade::Automatic-Reboot \"false\";\n");
    // t2 is a systemd-nspawn container: it shares the machine's clock, chrony is not for it.
    assert_eq!(ssh(H, "systemd-detect-virt --container"), "systemd-nspawn\n");
    assert_eq!(ssh(H, "dpkg-query -W -f='${db:Status-Abbrev}' chrony 2>/dev/null | grep -q '^ii' && echo installed || echo absent"), "absent\n");

    // logrotate rotates the app's logs: the file keeps its inode (copytruncate), emptied,
    // and yesterday's lines are in .1.
    ssh(H, "mkdir -p /var/www/flipper/shared/log && printf 'yesterday\\n' > /var/www/flipper/shared/log/pv-rotate.log");
    let inode = ssh(H, "stat -c %i /var/www/flipper/shared/log/pv-rotate.log");
    ssh(H, "logrotate -f /etc/logrotate.d/flipper");
    assert_eq!(ssh(H, "cat /var/www/flipper/shared/log/pv-rotate.log.1"), "yesterday\n");
    assert_eq!(ssh(H, "stat -c '%i %s' /var/www/flipper/shared/log/pv-rotate.log"), format!("{} 0\n", inode.trim()));

    let again = p.run(&["--format", "json"]);
    assert_eq!((again.code, again.changes()), (0, 0), "{}", again.all());

    // Turned off: the timers stay idle.
    let off = p.run(&["-e", "common_unattended_upgrades=false"]);
    assert_eq!(off.code, 0, "{}", off.all());
    assert_eq!(ssh(H, "apt-config dump APT::Periodic::Unattended-Upgrade"), "APT::Periodic::Unattended-Upgrade \"0\";\n");

    // A path that would add a directive to root's logrotate is refused before connecting;
    // plain paths pass.
    for bad in ["/var/www/x {\n  postrotate", "/var/www/a b", "/var/www/$(id)", "/var/www/x\"", "relative", "/var/www/../../etc"] {
        let value = serde_json::to_string(bad).expect("json");
        p.write("inventories/test.yml", &format!("{inv}vars: {{app: flipper, deploy_to: {value}}}\n"));
        let v = run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
        assert_eq!(v.code, 1, "{bad:?}: {}", v.all());
        assert!(v.stderr.contains("is not a plain absolute path"), "{bad:?}: {}", v.all());
    }
    p.write("inventories/test.yml", &format!("{inv}vars: {{app: flipper, deploy_to: /srv/apps/flipper-2.0_x}}\n"));
    let v = run_provision(p.dir.path(), &["validate", "inventories/test.yml"], &[]);
    assert_eq!(v.code, 0, "{}", v.all());
}
