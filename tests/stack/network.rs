//! Issue 13, must-show 1, on the sandbox stack: the `common` role's firewall (every sandbox
//! host has it) leaves each private service open only to the roles that use it, the
//! database accounts are per client address, and a rule set that would cut the controller's
//! SSH is reverted by the lockout canary. Read back from the hosts themselves.

use super::{project, provision, provision_in, sh, ssh};
use crate::common::reaches;

/// (port, the service's host, hosts whose roles use it, hosts outside those roles).
const SERVICES: [(&str, u16, &str, &[&str], &[&str]); 4] = [
    ("puma", 3000, "app1", &["web1"], &["worker1", "db1", "faye1"]),
    ("faye", 9293, "faye1", &["web1", "app1", "worker1"], &["db1", "db2"]),
    ("redis", 6379, "worker1", &["app1", "app2"], &["web1", "db1", "faye1"]),
    ("MariaDB", 3306, "db1", &["app1", "worker1", "db2"], &["web1", "faye1"]),
];

/// Each private port is open to its clients and closed to every other stack host; SSH is
/// open only to the admin network (the controller).
pub fn ports_closed_to_outsiders() {
    for (what, port, host, clients, outsiders) in SERVICES {
        for c in clients {
            assert!(reaches(c, host, port), "{what} on {host}:{port} is closed to {c}, which uses it");
        }
        for o in outsiders {
            assert!(!reaches(o, host, port), "{what} on {host}:{port} is open to {o}, outside the roles that use it");
        }
    }
    // SSH: the sandbox's firewall_admin_networks is the controller alone (every read-back in
    // this test comes from it), so another stack host is refused.
    assert!(!reaches("web1", "app1", 22) && !reaches("db2", "db1", 22), "SSH is open between stack hosts");
    for h in ["web1", "db1"] {
        let rules = sh(h, "nft list chain inet provision input");
        assert!(rules.contains("policy drop;"), "{h}'s input chain:\n{rules}");
    }
}

/// MariaDB's app and replication accounts exist for the inventory's client addresses only
/// (no wildcard), on the primary and, replicated, on the replica.
pub fn database_accounts_per_address() {
    for db in ["db1", "db2"] {
        let app = sh(db, "mysql -NBe \"SELECT Host FROM mysql.user WHERE User = 'shop' ORDER BY Host\"");
        assert_eq!(app, "10.77.0.22\n10.77.0.23\n10.77.0.24\nlocalhost", "{db}: the app's accounts");
        let repl = sh(db, "mysql -NBe \"SELECT Host FROM mysql.user WHERE User = 'repl' ORDER BY Host\"");
        assert_eq!(repl, "10.77.0.26", "{db}: the replication accounts");
    }
}

/// A rule set that admits SSH only from elsewhere would lock the controller out: the
/// canary's fresh login fails, the old rule set is put back and loaded, and faye1 stays
/// reachable. A normal run afterwards has nothing to do.
pub fn lockout_canary_reverts() {
    let sandbox = std::fs::read_to_string(project().join("inventories/sandbox.yml")).expect("sandbox inventory");
    let locked = sandbox.replace("firewall_admin_networks: [10.77.0.1]", "firewall_admin_networks: [10.99.0.0/16]");
    assert_ne!(locked, sandbox, "the sandbox inventory no longer sets firewall_admin_networks: [10.77.0.1]");
    std::fs::write(project().join("inventories/locked.yml"), locked).expect("write locked.yml");
    let in_force = sh("faye1", "cat /etc/nftables.conf");
    let run = provision_in(project(), &["inventories/locked.yml", "--limit", "faye1"]);
    assert_eq!(run.code, 1, "a rule set that locks the controller out did not fail:\n{}", run.out);
    assert!(run.out.contains("lockout canary"), "no canary in the output:\n{}", run.out);
    assert_eq!(sh("faye1", "cat /etc/nftables.conf"), in_force, "the previous rule set is not back");
    let live = sh("faye1", "nft list chain inet provision input");
    assert!(live.contains("10.77.0.1") && !live.contains("10.99.0.0/16"), "the previous rule set is not in force:\n{live}");
    assert_eq!(ssh("faye1", "true").0, 0, "faye1 is not reachable after the canary");
    let again = provision(&["--limit", "faye1"]);
    assert_eq!(again.code, 0, "a normal run after the canary:\n{}", again.out);
}
