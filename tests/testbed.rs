//! Tests of the testbed itself (tests/testbed.sh): real Debian hosts booted with
//! systemd in systemd-nspawn containers, reached over SSH with the testbed key and
//! strict host-key checking.
//!
//! The suite runner brings the hosts up before (`tests/testbed.sh up t1 t2 t3`)
//! and tears them down after (`down`, then `tests/testbed_down_check.sh`, which
//! checks that nothing is left: that cannot run here while hosts are up).
//! `PROVISION_TESTBED` names the state dir (default /var/lib/provision-testbed).
//! A missing inventory is a failure, not a skip: these tests must not pass
//! silently without hosts.
//!
//! Test traffic goes only to the testbed hosts. Isolation is checked by reading
//! the machine's iptables rules, never by sending packets anywhere else.
//!
//! Only std is used, so this file does not depend on the rest of the crate.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

const SUBNET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 77, 0, 0), 24);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const REGISTRY: &str = "deb.debian.org";
/// Hosts the suite runner always brings up.
const NAMED_HOSTS: [&str; 3] = ["t1", "t2", "t3"];

/// Units allowed to be failed when a host says `degraded`. Empty: a host made
/// from the testbed base boots to `running` in nspawn. Add a unit here only with
/// a comment saying why it cannot work in a container.
const ALLOWED_FAILED_UNITS: &[&str] = &[];

// ------------------------------------------------------------------ inventory

struct Host {
    name: String,
    address: Ipv4Addr,
}

struct Testbed {
    identity_file: PathBuf,
    known_hosts: PathBuf,
    hosts: Vec<Host>,
}

fn state_dir() -> PathBuf {
    std::env::var_os("PROVISION_TESTBED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/provision-testbed"))
}

/// The inventory written by testbed.sh, read once. Panics (fails every test
/// that needs it) with a clear message when the hosts are not up.
fn testbed() -> &'static Testbed {
    static TESTBED: OnceLock<Testbed> = OnceLock::new();
    TESTBED.get_or_init(|| {
        let path = state_dir().join("inventory.yml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "no testbed inventory at {} ({e}): bring the hosts up first with \
                 `tests/testbed.sh up t1 t2 t3` (the suite runner does this)",
                path.display()
            )
        });
        parse_inventory(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

/// Parses the fixed format testbed.sh writes (a strict subset of YAML), so
/// that this file needs no YAML crate.
fn parse_inventory(text: &str) -> Result<Testbed, String> {
    let (mut identity, mut known, mut hosts) = (None, None, Vec::<Host>::new());
    let mut section = "";
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let (key, value) = line
            .trim()
            .split_once(':')
            .ok_or(format!("bad line: {line}"))?;
        let value = value.trim();
        match (indent, section) {
            (0, _) => {
                section = if key == "ssh" || key == "hosts" {
                    key
                } else {
                    ""
                }
            }
            (2, "ssh") if key == "identity_file" => identity = Some(PathBuf::from(value)),
            (2, "ssh") if key == "known_hosts" => known = Some(PathBuf::from(value)),
            (2, "hosts") => hosts.push(Host {
                name: key.to_string(),
                address: Ipv4Addr::UNSPECIFIED,
            }),
            (4, "hosts") if key == "address" => {
                let host = hosts.last_mut().ok_or("address outside a host")?;
                host.address = value
                    .parse()
                    .map_err(|e| format!("bad address {value}: {e}"))?;
            }
            _ => {}
        }
    }
    if let Some(h) = hosts.iter().find(|h| h.address.is_unspecified()) {
        return Err(format!("host {} has no address", h.name));
    }
    Ok(Testbed {
        identity_file: identity.ok_or("no ssh.identity_file")?,
        known_hosts: known.ok_or("no ssh.known_hosts")?,
        hosts,
    })
}

fn host(name: &str) -> &'static Host {
    let tb = testbed();
    tb.hosts.iter().find(|h| h.name == name).unwrap_or_else(|| {
        let names: Vec<_> = tb.hosts.iter().map(|h| h.name.as_str()).collect();
        panic!("host {name} is not in the testbed inventory (hosts: {names:?}); run `tests/testbed.sh up t1 t2 t3`")
    })
}

// ------------------------------------------------------------------ ssh

fn ssh_with_known_hosts(known_hosts: &Path, host: &Host, command: &str) -> Output {
    let tb = testbed();
    Command::new("ssh")
        .arg("-i")
        .arg(&tb.identity_file)
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
        ])
        .arg(format!("root@{}", host.address))
        .arg(command)
        .output()
        .expect("cannot run ssh (is openssh-client installed?)")
}

fn ssh(host: &Host, command: &str) -> Output {
    ssh_with_known_hosts(&testbed().known_hosts, host, command)
}

/// Runs a command on a host and returns its stdout; panics with everything
/// known when it fails.
fn ssh_ok(host: &Host, command: &str) -> String {
    let out = ssh(host, command);
    assert!(
        out.status.success(),
        "{}: `{command}` failed ({}):\n{}",
        host.name,
        out.status,
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn describe(out: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )
}

/// Per host, the result of installing nginx, computed once.
type Once = Arc<OnceLock<Result<(), String>>>;

/// Installs nginx on a host once per test run, whichever test asks first.
fn ensure_nginx(host: &'static Host) {
    static DONE: OnceLock<Mutex<HashMap<String, Once>>> = OnceLock::new();
    let cell = DONE
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(host.name.clone())
        .or_default()
        .clone();
    let result = cell.get_or_init(|| {
        let out = ssh(
            host,
            "export DEBIAN_FRONTEND=noninteractive; \
             timeout 300 apt-get update -q && timeout 600 apt-get install -y -q nginx",
        );
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}: apt-get install nginx failed ({}):\n{}",
                host.name,
                out.status,
                describe(&out)
            ))
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Runs `f` for each named host in its own thread; fails if any failed.
fn on_named_hosts(f: fn(&'static Host)) {
    let threads: Vec<_> = NAMED_HOSTS
        .iter()
        .map(|name| (name, thread::spawn(move || f(host(name)))))
        .collect();
    let failed: Vec<_> = threads
        .into_iter()
        .filter_map(|(n, t)| t.join().is_err().then_some(*n))
        .collect();
    assert!(
        failed.is_empty(),
        "failed on hosts {failed:?} (see the panics above)"
    );
}

// ------------------------------------------------------------------ hosts

#[test]
fn every_host_boots_systemd_to_running() {
    // The hosts the suite brought up for this check; others (t4, the sandbox) belong to
    // tests that change them on purpose (bootstrap disables root login on t4).
    for name in NAMED_HOSTS {
        let h = host(name);
        let out = ssh(h, "timeout 60 systemctl is-system-running --wait");
        let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        match state.as_str() {
            "running" => {}
            "degraded" => {
                let failed = ssh_ok(h, "systemctl --failed --plain --no-legend --no-pager");
                println!("{}: degraded; failed units:\n{failed}", h.name);
                let units: Vec<&str> = failed
                    .lines()
                    .filter_map(|l| l.split_whitespace().next())
                    .collect();
                let unexpected: Vec<_> = units
                    .iter()
                    .filter(|u| !ALLOWED_FAILED_UNITS.contains(u))
                    .collect();
                assert!(
                    unexpected.is_empty(),
                    "{}: degraded by units not in the allow-list: {unexpected:?}",
                    h.name
                );
            }
            _ => panic!(
                "{}: systemctl is-system-running answered {state:?}\n{}",
                h.name,
                describe(&out)
            ),
        }
    }
}

#[test]
fn nginx_installs_from_the_registry_and_runs() {
    on_named_hosts(|h| {
        ensure_nginx(h);
        let state = ssh_ok(h, "systemctl is-active nginx");
        assert_eq!(state, "active", "{}: nginx is {state}", h.name);
    });
}

#[test]
fn hosts_reach_each_other_over_tcp() {
    on_named_hosts(ensure_nginx);
    for from in NAMED_HOSTS.map(host) {
        for to in NAMED_HOSTS.map(host) {
            if from.name == to.name {
                continue;
            }
            // bash's /dev/tcp: a real TCP connection from one host to the other.
            let cmd = format!(
                "timeout 10 bash -c 'exec 3<>/dev/tcp/{}/80 && printf \"GET / HTTP/1.0\\r\\n\\r\\n\" >&3 && head -n1 <&3'",
                to.address
            );
            let status = ssh_ok(from, &cmd);
            assert!(
                status.starts_with("HTTP/1.1 200"),
                "{} -> {}: nginx answered {status:?}",
                from.name,
                to.name
            );
        }
    }
}

#[test]
fn strict_host_key_checking_rejects_an_unknown_host() {
    let h = host("t1");
    let empty = std::env::temp_dir().join(format!("pvtb-empty-known-hosts-{}", std::process::id()));
    std::fs::write(&empty, "").unwrap();
    let out = ssh_with_known_hosts(&empty, h, "true");
    std::fs::remove_file(&empty).ok();
    assert!(
        !out.status.success(),
        "ssh with an empty known_hosts succeeded:\n{}",
        describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Host key verification failed"),
        "ssh failed for another reason:\n{}",
        describe(&out)
    );
    // And the testbed's own known_hosts is accepted.
    assert_eq!(ssh_ok(h, "echo ok"), "ok");
}

// ------------------------------------------------------------------ isolation by reading the rules

fn in_net(addr: Ipv4Addr, (net, len): (Ipv4Addr, u8)) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(addr) & mask == u32::from(net) & mask
}

fn parse_cidr(s: &str) -> (Ipv4Addr, u8) {
    let (a, l) = s.split_once('/').unwrap_or((s, "32"));
    (
        a.parse().unwrap_or_else(|_| panic!("bad address {s}")),
        l.parse().unwrap_or_else(|_| panic!("bad mask {s}")),
    )
}

/// One `-A CHAIN ...` line of `iptables -S`.
#[derive(Debug, Default)]
struct Rule {
    chain: String,
    src: Option<(bool, (Ipv4Addr, u8))>, // (negated, cidr)
    dst: Option<(bool, (Ipv4Addr, u8))>,
    ctstate: Option<(bool, Vec<String>)>,
    in_iface: Option<(bool, String)>,
    /// Any match this parser does not model (protocol, ports, marks...).
    unknown: Vec<String>,
    target: String,
    text: String,
}

struct Table {
    policies: HashMap<String, String>,
    chains: BTreeSet<String>,
    rules: Vec<Rule>,
}

/// Splits a rule line into words, keeping "quoted strings" (comments) whole.
fn words(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn parse_rules(text: &str) -> Table {
    let mut table = Table {
        policies: HashMap::new(),
        chains: BTreeSet::new(),
        rules: Vec::new(),
    };
    for line in text.lines() {
        let w = words(line);
        match w.first().map(String::as_str) {
            Some("-P") => {
                table.policies.insert(w[1].clone(), w[2].clone());
            }
            Some("-N") => {
                table.chains.insert(w[1].clone());
            }
            Some("-A") => {
                let mut rule = Rule {
                    chain: w[1].clone(),
                    text: line.to_string(),
                    ..Default::default()
                };
                let (mut i, mut neg) = (2, false);
                while i < w.len() {
                    let opt = w[i].as_str();
                    let val = w.get(i + 1).cloned().unwrap_or_default();
                    i += 2;
                    match opt {
                        "!" => {
                            neg = true;
                            i -= 1;
                            continue;
                        }
                        "-s" => rule.src = Some((neg, parse_cidr(&val))),
                        "-d" => rule.dst = Some((neg, parse_cidr(&val))),
                        "-i" => rule.in_iface = Some((neg, val)),
                        "--ctstate" | "--state" => {
                            rule.ctstate = Some((neg, val.split(',').map(String::from).collect()))
                        }
                        "-m" => {} // the module's own options follow
                        "-j" | "-g" => {
                            rule.target = val;
                            break; // the rest are the target's options
                        }
                        _ => {
                            // An option not modelled: skip its values, remember it.
                            while i < w.len() && !w[i].starts_with('-') && w[i] != "!" {
                                i += 1;
                            }
                            rule.unknown.push(opt.to_string());
                        }
                    }
                    neg = false;
                }
                table.rules.push(rule);
            }
            _ => {}
        }
    }
    table
}

fn iptables(table: &str) -> Table {
    let out = Command::new("iptables")
        .args(["-t", table, "-S"])
        .output()
        .expect("cannot run iptables");
    assert!(
        out.status.success(),
        "iptables -t {table} -S failed (these tests run as root):\n{}",
        describe(&out)
    );
    parse_rules(&String::from_utf8_lossy(&out.stdout))
}

#[derive(Clone, Copy, PartialEq)]
enum Tri {
    Yes,
    No,
    Maybe,
}

/// A NEW packet from a testbed host, as the rules would see it. Fields the
/// rules may test that are not known here make a match `Maybe`.
struct Packet {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    in_iface: &'static str,
}

fn matches(rule: &Rule, p: &Packet) -> Tri {
    let mut result = Tri::Yes;
    let mut and = |t: bool| {
        if !t {
            result = Tri::No
        }
    };
    if let Some((neg, cidr)) = rule.src {
        and(in_net(p.src, cidr) != neg);
    }
    if let Some((neg, cidr)) = rule.dst {
        and(in_net(p.dst, cidr) != neg);
    }
    if let Some((neg, states)) = &rule.ctstate {
        and(states.iter().any(|s| s == "NEW") != *neg);
    }
    if let Some((neg, iface)) = &rule.in_iface {
        let m = match iface.strip_suffix('+') {
            Some(prefix) => p.in_iface.starts_with(prefix),
            None => p.in_iface == iface,
        };
        and(m != *neg);
    }
    if result == Tri::Yes && !rule.unknown.is_empty() {
        result = Tri::Maybe;
    }
    result
}

/// Every verdict the packet may get from `chain` ("RETURN" = goes back to the
/// calling chain). A `Maybe` match counts both ways, so an ACCEPT that might
/// apply shows up: the analysis errs on the side of finding a leak.
fn verdicts(table: &Table, chain: &str, p: &Packet, depth: usize) -> BTreeSet<String> {
    assert!(depth < 32, "iptables chains loop at {chain}");
    let mut out = BTreeSet::new();
    let mut reaches_end = true;
    for rule in table.rules.iter().filter(|r| r.chain == chain) {
        let m = matches(rule, p);
        if m == Tri::No {
            continue;
        }
        let target = rule.target.as_str();
        let goes_on = if table.chains.contains(target) {
            let sub = verdicts(table, target, p, depth + 1);
            out.extend(sub.iter().filter(|v| *v != "RETURN").cloned());
            sub.contains("RETURN")
        } else if TERMINAL_TARGETS.contains(&target) {
            out.insert(target.to_string());
            false
        } else {
            true // LOG, MARK, no target...: the packet goes on
        };
        if m == Tri::Yes && !goes_on {
            reaches_end = false;
            break;
        }
    }
    if reaches_end {
        out.insert("RETURN".to_string());
    }
    // Leaving a built-in chain means its policy.
    if let Some(policy) = table.policies.get(chain) {
        if out.remove("RETURN") {
            out.insert(policy.clone());
        }
    }
    out
}

const TERMINAL_TARGETS: &[&str] = &[
    "ACCEPT",
    "DROP",
    "REJECT",
    "RETURN",
    "MASQUERADE",
    "SNAT",
    "DNAT",
    "REDIRECT",
    "QUEUE",
    "NFQUEUE",
];

fn registry_addresses() -> BTreeSet<Ipv4Addr> {
    let out = Command::new("getent")
        .args(["ahostsv4", REGISTRY])
        .output()
        .expect("cannot run getent");
    let addrs: BTreeSet<Ipv4Addr> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(
        !addrs.is_empty(),
        "cannot resolve {REGISTRY} on this machine"
    );
    addrs
}

/// Destinations outside the testbed to evaluate the rules for (no packet is
/// sent to any of them): a spread of ranges, plus the first and an inner
/// address of every network any rule names, so a rule opening a specific
/// outside address cannot hide between samples.
fn outside_destinations(tables: &[&Table], registry: &BTreeSet<Ipv4Addr>) -> BTreeSet<Ipv4Addr> {
    let mut dsts: BTreeSet<Ipv4Addr> = [
        [192, 0, 2, 1],
        [198, 51, 100, 7],
        [10, 0, 0, 1],
        [10, 77, 1, 1],
        [10, 76, 255, 254],
        [172, 17, 0, 1],
        [192, 168, 1, 1],
        [100, 64, 0, 1],
        [8, 8, 8, 8],
        [255, 255, 255, 255],
    ]
    .map(Ipv4Addr::from)
    .into_iter()
    .collect();
    for r in registry {
        dsts.insert(Ipv4Addr::from(u32::from(*r).wrapping_add(1)));
        dsts.insert(Ipv4Addr::from(u32::from(*r).wrapping_sub(1)));
    }
    for rule in tables.iter().flat_map(|t| t.rules.iter()) {
        for (_, (net, _)) in [rule.src, rule.dst].into_iter().flatten() {
            dsts.insert(net);
            dsts.insert(Ipv4Addr::from(u32::from(net).wrapping_add(1)));
        }
    }
    dsts.retain(|d| !in_net(*d, SUBNET) && !registry.contains(d));
    dsts
}

#[test]
fn firewall_forwards_testbed_packets_only_to_the_registry_and_other_hosts() {
    let filter = iptables("filter");
    let registry = registry_addresses();
    let hosts: Vec<&Host> = testbed().hosts.iter().collect();
    let verdicts_for = |src: Ipv4Addr, dst: Ipv4Addr| {
        verdicts(
            &filter,
            "FORWARD",
            &Packet {
                src,
                dst,
                in_iface: "pvtb0",
            },
            0,
        )
    };
    let accept: BTreeSet<String> = ["ACCEPT".to_string()].into();
    let drop: BTreeSet<String> = ["DROP".to_string()].into();
    let mut problems = Vec::new();
    for from in &hosts {
        for to in &hosts {
            let v = verdicts_for(from.address, to.address);
            if v != accept {
                problems.push(format!("{} -> {}: {v:?}, want ACCEPT", from.name, to.name));
            }
        }
        for r in &registry {
            let v = verdicts_for(from.address, *r);
            if v != accept {
                problems.push(format!("{} -> registry {r}: {v:?}, want ACCEPT", from.name));
            }
        }
        for d in outside_destinations(&[&filter], &registry) {
            let v = verdicts_for(from.address, d);
            if v != drop {
                problems.push(format!("{} -> outside {d}: {v:?}, want DROP", from.name));
            }
        }
        // Hosts may not open connections to the machine itself either.
        let v = verdicts(
            &filter,
            "INPUT",
            &Packet {
                src: from.address,
                dst: GATEWAY,
                in_iface: "pvtb0",
            },
            0,
        );
        if v != drop {
            problems.push(format!(
                "{} -> machine {GATEWAY}: {v:?}, want DROP",
                from.name
            ));
        }
    }
    let rules: Vec<&str> = filter.rules.iter().map(|r| r.text.as_str()).collect();
    assert!(
        problems.is_empty(),
        "forwarding rules leak:\n{}\nrules:\n{}",
        problems.join("\n"),
        rules.join("\n")
    );
}

#[test]
fn nat_masquerades_testbed_packets_only_to_the_registry() {
    let nat = iptables("nat");
    let registry = registry_addresses();
    let mut problems = Vec::new();
    // Statically: every source-NAT rule that may apply to testbed packets names
    // a registry address as its only destination.
    for rule in nat
        .rules
        .iter()
        .filter(|r| r.target == "MASQUERADE" || r.target == "SNAT")
    {
        let may_apply = match rule.src {
            None => true,
            Some((neg, cidr)) => testbed()
                .hosts
                .iter()
                .any(|h| in_net(h.address, cidr) != neg),
        };
        let to_registry = matches!(rule.dst, Some((false, (a, 32))) if registry.contains(&a));
        if may_apply && !to_registry {
            problems.push(format!(
                "rule may source-NAT testbed packets elsewhere: {}",
                rule.text
            ));
        }
    }
    // And by walking POSTROUTING for packets from each host.
    for h in &testbed().hosts {
        let walk = |dst| {
            verdicts(
                &nat,
                "POSTROUTING",
                &Packet {
                    src: h.address,
                    dst,
                    in_iface: "pvtb0",
                },
                0,
            )
        };
        for r in &registry {
            let v = walk(*r);
            if v != ["MASQUERADE".to_string()].into() {
                problems.push(format!(
                    "{} -> registry {r}: {v:?}, want MASQUERADE",
                    h.name
                ));
            }
        }
        let others = testbed()
            .hosts
            .iter()
            .map(|o| o.address)
            .chain(outside_destinations(&[&nat], &registry));
        for d in others {
            let v = walk(d);
            if v.contains("MASQUERADE") || v.contains("SNAT") {
                problems.push(format!("{} -> {d}: {v:?}, want no source NAT", h.name));
            }
        }
    }
    let rules: Vec<&str> = nat.rules.iter().map(|r| r.text.as_str()).collect();
    assert!(
        problems.is_empty(),
        "{}\nnat rules:\n{}",
        problems.join("\n"),
        rules.join("\n")
    );
}

// ------------------------------------------------------------------ the rule reader itself

#[test]
fn rule_reader_finds_an_accept_that_bypasses_the_drop() {
    let rules = "-P FORWARD ACCEPT\n-N PVTB-FWD\n\
        -A FORWARD -s 10.77.0.0/24 -j PVTB-FWD\n\
        -A PVTB-FWD -s 10.77.0.0/24 -d 10.77.0.0/24 -j ACCEPT\n\
        -A PVTB-FWD -s 10.77.0.0/24 -p tcp -m tcp --dport 443 -j ACCEPT\n\
        -A PVTB-FWD -s 10.77.0.0/24 -j DROP\n";
    let t = parse_rules(rules);
    let p = |d: [u8; 4]| Packet {
        src: Ipv4Addr::new(10, 77, 0, 11),
        dst: d.into(),
        in_iface: "pvtb0",
    };
    assert_eq!(
        verdicts(&t, "FORWARD", &p([10, 77, 0, 12]), 0),
        ["ACCEPT".to_string()].into()
    );
    // The port rule might accept: both verdicts are possible, so it is a leak.
    let v = verdicts(&t, "FORWARD", &p([192, 0, 2, 1]), 0);
    assert!(v.contains("ACCEPT") && v.contains("DROP"), "{v:?}");
    // Without our jump, the policy accepts.
    let t = parse_rules("-P FORWARD ACCEPT\n-A FORWARD -d 10.77.0.0/24 -j DROP\n");
    assert_eq!(
        verdicts(&t, "FORWARD", &p([192, 0, 2, 1]), 0),
        ["ACCEPT".to_string()].into()
    );
}
