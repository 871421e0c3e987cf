//! The firewall role (nftables) on testbed hosts, read back from the network: t1 is a redis
//! host (by an inventory group), t3 a sidekiq host and t2 neither. After the converge, t3
//! reaches t1's redis port and t2 does not; a port no rule opens is closed to everyone; SSH
//! still works. A rule set that would cut the controller's SSH is reverted by the lockout
//! canary, and the host stays reachable. A value that is not an address never reaches the
//! rule set.

mod common;
use common::{reaches, ssh, ssh_output, Project};

const REDIS: u16 = 6379;
const UNLISTED: u16 = 6380;


/// Takes t1's firewall and listeners down again, whatever the test did.
struct Cleanup;
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = ssh_output("t1", "nft flush ruleset; systemctl disable -q nftables 2>/dev/null; rm -f /etc/nftables.conf; pkill -f pv-listen; true");
    }
}

#[test]
fn the_firewall_opens_each_service_to_its_clients_only_and_never_locks_us_out() {
    let _serial = common::serial();
    let _cleanup = Cleanup;
    let p = Project::new(&[("t1", &["firewall"]), ("t2", &[]), ("t3", &[])]);
    p.copy_role("stack");
    p.copy_role("firewall");
    let inv = std::fs::read_to_string(p.path("inventories/test.yml")).expect("inventory").replace("ssh:\n", "ssh:\n  connect_timeout: 3\n");
    // t1's admin networks, when given, come from a group of its own.
    let inventory = |admin: Option<&str>| {
        let extra = admin.map(|a| format!("  extra:\n    hosts: [t1]\n    vars: {{firewall_admin_networks: [{a}]}}\n")).unwrap_or_default();
        format!("{inv}vars: {{app: flipper}}\ngroups:\n  redis: [t1]\n  sidekiq: [t3]\n{extra}")
    };
    p.write("inventories/test.yml", &inventory(None));

    // Two listeners on t1: the redis port, and one that no rule opens.
    for port in [REDIS, UNLISTED] {
        ssh("t1", &format!("setsid nohup perl -e '$0=\"pv-listen\"; use IO::Socket::INET; $s=IO::Socket::INET->new(LocalPort=>{port},Listen=>5,ReuseAddr=>1) or die; while($c=$s->accept){{close $c}}' >/dev/null 2>&1 < /dev/null &"));
    }
    for _ in 0..20 {
        if reaches("t2", "t1", REDIS) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(reaches("t2", "t1", UNLISTED), "before the firewall, everyone gets in (the test can fail)");

    let r = p.run(&["--limit", "t1"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(ssh("t1", "nft list ruleset").contains("policy drop"), "the rule set is in force");
    assert!(reaches("t3", "t1", REDIS), "a sidekiq host reaches redis");
    assert!(!reaches("t2", "t1", REDIS), "a host of no client role does not");
    assert!(!reaches("t3", "t1", UNLISTED) && !reaches("t2", "t1", UNLISTED), "a port no rule opens is closed to everyone");
    assert!(reaches("t2", "t1", 22), "SSH is open to the admin networks (everyone by default)");
    let again = p.run(&["--limit", "t1", "--format", "json"]);
    assert_eq!((again.code, again.changes()), (0, 0), "{}", again.all());
    let in_force = ssh("t1", "cat /etc/nftables.conf");

    // Values that are not addresses are refused before anything connects; addresses pass.
    for bad in ["10.0.0.1 } accept", "0.0.0.0/0, 10.0.0.0/8", "$(reboot)", "-1.2.3.4", "10.0.0.0/40", "a\nb", "'x'", "\"x\"", "\\x"] {
        let value = serde_json::to_string(bad).expect("json");
        p.write("inventories/test.yml", &inventory(Some(&value)));
        let r = p.run(&["--limit", "t1", "--check"]);
        assert_eq!(r.code, 1, "{bad:?}: {}", r.all());
        assert!(r.stderr.contains("is not an IP address") || r.stderr.contains("prefix length"), "{bad:?}: {}", r.all());
    }
    assert_eq!(ssh("t1", "cat /etc/nftables.conf"), in_force, "nothing changed");

    // A rule set that lets SSH in only from elsewhere would cut the controller off: the
    // canary's fresh login fails, the old rules are put back and loaded, and the host stays
    // reachable.
    p.write("inventories/test.yml", &inventory(Some("10.99.0.0/16")));
    let check = p.run(&["--limit", "t1", "--check"]);
    assert_eq!(check.code, 2, "{}", check.all());
    assert!(check.stdout.contains("+    ip saddr { 10.99.0.0/16 } tcp dport 22 accept"), "the check shows the new rule: {}", check.all());
    let locked = p.run(&["--limit", "t1"]);
    assert_eq!(locked.code, 1, "{}", locked.all());
    assert!(locked.all().contains("lockout canary"), "{}", locked.all());
    assert_eq!(ssh("t1", "cat /etc/nftables.conf"), in_force, "the previous rule set is back");
    assert!(ssh("t1", "nft list ruleset").contains("0.0.0.0/0"), "and in force");
    assert!(reaches("t2", "t1", 22) && !reaches("t2", "t1", REDIS));
}
