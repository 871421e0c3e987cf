#!/usr/bin/env python3
"""The bench driver (called by bench/run.sh once the venv and the hosts are ready).

For each host count N: for each tool, reset the hosts (outside timing), time the changing
run, then the no-op runs; time the floor (`ssh HOST true` to all N hosts in parallel).
Writes bench/RESULTS.md and bench/results/*.json, and prints the table.

Measurement of one run (see `measure`):
- wall: from spawn to the exit of the tool's process (time.monotonic).
- cpu: user+sys of every process of the run's process tree on the controller, including
  daemonized ssh ControlMaster processes: this process is a child subreaper, so they stay
  our descendants; cpu = Δ(getrusage(RUSAGE_CHILDREN)) + Δ(utime+stime+cutime+cstime of
  live descendants, from /proc).
- maxrss: ru_maxrss of the tool's process (wait4), i.e. its largest process: for provision
  its own process; for Ansible/pyinfra the largest of the main process and its forks.
- tree_rss: the peak of the summed RSS of every descendant, sampled every 50 ms (includes
  Ansible's forks and every ssh process).
"""
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proctree import descendants, kill_leftovers, proc_table, reap, set_subreaper, tree_cpu  # noqa: E402

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(BENCH)
STATE = os.environ.get("PROVISION_TESTBED", "/var/lib/provision-testbed")
KEY = f"{STATE}/id_ed25519"
KNOWN = f"{STATE}/known_hosts"
VENV = f"{BENCH}/.venv/bin"
PROVISION = os.environ.get("PROVISION_BIN", f"{ROOT}/target/release/provision")
COUNTS = [int(x) for x in os.environ.get("BENCH_HOSTS", "1 5 20").split()]
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
CHANGE_RUNS = int(os.environ.get("BENCH_CHANGE_RUNS", "5"))
TOOLS = os.environ.get("BENCH_TOOLS", "provision ansible pyinfra").split()
# The SSH options every tool and the floor use (Ansible adds its -C/ControlMaster defaults).
SSH_OPTS = ["-i", KEY, "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={KNOWN}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=10", "-o", "BatchMode=yes"]
LOGS = f"{BENCH}/results/logs"


def hosts(n):
    return [(f"b{i}", f"10.77.0.{100 + i}") for i in range(1, n + 1)]


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ measuring


def measure(cmd, cwd, env, logfile):
    reap()
    sampling = {"peak": 0, "stop": False}

    def sampler():
        me = os.getpid()
        while not sampling["stop"]:
            t = proc_table()
            sampling["peak"] = max(sampling["peak"], sum(t[p][2] for p in descendants(t, me)))
            time.sleep(0.05)

    load = float(open("/proc/loadavg").read().split()[0])
    cpu0 = tree_cpu()
    with open(logfile, "w") as out:
        th = threading.Thread(target=sampler, daemon=True)
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        th.start()
        while True:
            pid, status, ru = os.wait4(-1, 0)  # also reaps orphans adopted meanwhile
            if pid == p.pid:
                break
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    # Let the run's own ssh masters finish exiting (they are counted either way).
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        reap()
        t = proc_table()
        if not [d for d in descendants(t, os.getpid()) if "ControlPersist" not in cmdline(d)]:
            break
        time.sleep(0.02)
    sampling["stop"] = True
    th.join()
    cpu = tree_cpu() - cpu0
    return {"wall": wall, "cpu": cpu, "maxrss_kb": ru.ru_maxrss, "tree_rss_kb": sampling["peak"],
            "rc": p.returncode, "log": os.path.relpath(logfile, BENCH), "load1": load}


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# ------------------------------------------------------------------ hosts

RESET = r"""
set -e
systemctl disable --now bench-app.service >/dev/null 2>&1 || true
rm -f /etc/systemd/system/bench-app.service /etc/sudoers.d/bench
systemctl daemon-reload
systemctl reset-failed bench-app.service >/dev/null 2>&1 || true
rm -rf /opt/bench /etc/bench /var/lib/provision
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o Dpkg::Lock::Timeout=120 tree jq libjq1 libonig5 >/dev/null 2>&1 || true
for p in tree jq; do ! dpkg-query -W -f='${db:Status-Abbrev}' $p 2>/dev/null | grep -q '^ii' || { echo "$p still installed"; exit 1; }; done
echo reset-ok
"""


def on_all(n, script, what):
    procs = [(name, subprocess.Popen(["ssh", *SSH_OPTS, f"root@{addr}", "sh", "-s"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
             for name, addr in hosts(n)]
    bad = []
    for name, p in procs:
        out, _ = p.communicate(script)
        if p.returncode != 0:
            bad.append(f"{name}: rc={p.returncode}: {out.strip()[-500:]}")
    reap()
    if bad:
        raise SystemExit(f"bench: {what} failed:\n" + "\n".join(bad))


def reset(n):
    on_all(n, RESET, "reset")


# ------------------------------------------------------------------ the tools

def write_inventories(n):
    with open(f"{BENCH}/provision/inventories/bench-{n}.yml", "w") as f:
        f.write("# generated by bench/lib/bench.py\nstage: bench\nssh:\n"
                f"  identity_file: {KEY}\n  known_hosts: {KNOWN}\n  connect_timeout: 10\nhosts:\n")
        for name, addr in hosts(n):
            f.write(f"  {name}: {{address: {addr}, user: root, roles: [bench]}}\n")
    with open(f"{BENCH}/ansible/inventory-{n}.yml", "w") as f:
        f.write("# generated by bench/lib/bench.py\nbench:\n  hosts:\n")
        for name, addr in hosts(n):
            f.write(f"    {name}: {{ansible_host: {addr}}}\n")
        f.write(f"  vars: {{ansible_user: root, ansible_ssh_private_key_file: {KEY}}}\n")


def command(tool, n):
    env = dict(os.environ)
    env.pop("PROVISION_INVENTORY", None)
    if tool == "provision":
        return [PROVISION, f"inventories/bench-{n}.yml", "-v", "--forks", "50"], f"{BENCH}/provision", env
    if tool == "ansible":
        env.update(ANSIBLE_CONFIG=f"{BENCH}/ansible/ansible.cfg", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
        return [f"{VENV}/ansible-playbook", "-i", f"inventory-{n}.yml", "site.yml"], f"{BENCH}/ansible", env
    if tool == "pyinfra":
        env.update(BENCH_N=str(n), PYINFRA_PROGRESS="off")
        return [f"{VENV}/pyinfra", "-y", "--parallel", "50", "inventory.py", "deploy.py"], f"{BENCH}/pyinfra", env
    if tool == "floor":
        ssh = " ".join(shlex.quote(a) for a in ["ssh", *SSH_OPTS])
        script = "".join(f"{ssh} root@{addr} true & " for _, addr in hosts(n)) + "wait"
        # Every ssh must succeed: `wait` alone would hide a failure, so count them.
        script = "fail=0; pids=''; " + "".join(f"{ssh} root@{addr} true & pids=\"$pids $!\"; " for _, addr in hosts(n)) \
            + "for p in $pids; do wait $p || fail=1; done; exit $fail"
        return ["sh", "-c", script], BENCH, env
    raise ValueError(tool)


def changes(tool, text, n):
    """How many changes the run reported in total (None if the output could not be read)."""
    if tool == "provision":
        m = re.findall(r"^\S+: ok=\d+ changed=(\d+) failed=(\d+)", text, re.M)
        return sum(int(c) for c, _ in m) if len(m) == n else None
    if tool == "ansible":
        m = re.findall(r"^\S+\s*: ok=\d+\s+changed=(\d+)", text, re.M)
        return sum(int(c) for c in m) if len(m) == n else None
    if tool == "pyinfra":
        # The "--> Results:" table ends with "Grand total  OPS  SUCCESS  ERROR  NO-CHANGE";
        # "Success" counts operations that changed something ("-" for none).
        m = re.search(r"^\s*Grand total\s+(\d+)\s+(\S+)\s+(\S+)", text, re.M)
        if not m:
            return None
        return 0 if m.group(2) == "-" else int(m.group(2))
    return 0


def round_trips(text):
    return [int(x) for x in re.findall(r"round_trips=(\d+)", text)]


def phase_ms(text):
    return [tuple(int(x) for x in m) for m in re.findall(r"round_trips=\d+ connect=(\d+)ms probe=(\d+)ms apply=(\d+)ms", text)]


def floor_run(n, i, floor_rec):
    cmd, cwd, env = command("floor", n)
    r = measure(cmd, cwd, env, f"{LOGS}/floor-{n}-noop-{i}.log")
    r["changes"] = 0
    floor_rec["noop"].append(r)
    log(f"floor n={n} #{i}: wall={r['wall']:.2f}s cpu={r['cpu']:.2f}s rc={r['rc']}")
    if r["rc"] != 0:
        raise SystemExit(f"bench: the floor failed, see bench/{r['log']}")


def run_tool(tool, n, results, floor_rec=None):
    """floor_rec: when given, one floor run is made right before each no-op run, so that the
    two are compared under the same background load."""
    cmd, cwd, env = command(tool, n)
    rec = {"tool": tool, "n": n, "cmd": cmd, "change": [], "noop": []}
    change_runs = int(os.environ.get(f"BENCH_CHANGE_RUNS_{tool.upper()}", CHANGE_RUNS)) if tool != "floor" else 0
    for i in range(change_runs):
        reset(n)
        r = measure(cmd, cwd, env, f"{LOGS}/{tool}-{n}-change-{i}.log")
        text = open(f"{BENCH}/{r['log']}").read()
        r["changes"] = changes(tool, text, n)
        if tool == "provision":
            r["round_trips"] = round_trips(text)
            r["phases_ms"] = phase_ms(text)
        rec["change"].append(r)
        log(f"{tool} n={n} change #{i}: wall={r['wall']:.2f}s cpu={r['cpu']:.2f}s rc={r['rc']} changes={r['changes']}")
        if r["rc"] != 0:
            raise SystemExit(f"bench: {tool} failed, see bench/{r['log']}")
    if tool == "floor":
        pass
    elif change_runs == 0:
        # No changing run asked for: still converge once, untimed, so the no-op runs are no-ops.
        reset(n)
        subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    for i in range(RUNS):
        if floor_rec is not None:
            floor_run(n, i, floor_rec)
        r = measure(cmd, cwd, env, f"{LOGS}/{tool}-{n}-noop-{i}.log")
        text = open(f"{BENCH}/{r['log']}").read()
        r["changes"] = changes(tool, text, n)
        if tool == "provision":
            r["round_trips"] = round_trips(text)
            r["phases_ms"] = phase_ms(text)
        rec["noop"].append(r)
        log(f"{tool} n={n} no-op #{i}: wall={r['wall']:.2f}s cpu={r['cpu']:.2f}s rc={r['rc']} changes={r.get('changes')}"
            + (f" round_trips={r['round_trips']}" if tool == "provision" else ""))
        if r["rc"] != 0:
            raise SystemExit(f"bench: {tool} failed, see bench/{r['log']}")
    kill_leftovers()
    results.append(rec)


# ------------------------------------------------------------------ report

def med(rs, k):
    return statistics.median(r[k] for r in rs) if rs else None


def tool_version(tool):
    try:
        if tool == "provision":
            v = subprocess.run([PROVISION, "--version"], capture_output=True, text=True).stdout.strip()
            if os.path.realpath(PROVISION) == os.path.realpath(f"{ROOT}/target/release/provision"):
                head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
                return f"{v}, target/release/provision built from {head}"
            # A build from elsewhere (PROVISION_BIN): name the commit it says it was built from.
            base = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(PROVISION))), "BASE_COMMIT")
            src = f" from main {open(base).read().strip()[:7]} with local changes" if os.path.exists(base) else ""
            return f"{v}, {PROVISION}{src}"
        if tool == "ansible":
            return subprocess.run([f"{VENV}/ansible-playbook", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        if tool == "pyinfra":
            return subprocess.run([f"{VENV}/pyinfra", "--version"], capture_output=True, text=True).stdout.strip()
        if tool == "floor":
            return subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    except Exception as e:  # noqa: BLE001
        return f"unknown ({e})"


def machine():
    mem = [l for l in open("/proc/meminfo") if l.startswith("MemTotal")][0].split()[1]
    model = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][:1]
    return {"nproc": os.cpu_count(), "mem_gib": round(int(mem) / 1024 / 1024, 1), "cpu": model[0] if model else "?",
            "kernel": platform.release()}


def fmt(x, unit="s"):
    if x is None:
        return "–"
    return f"{x:.2f}" if unit == "s" else f"{x:.0f}"


def ratio(a, b):
    return f"{a / b:.3f}" if a is not None and b else "–"


def speedup(a, b):
    return f"{b / a:.1f}×" if a is not None and b else "–"


def report(results, meta):
    by = {(r["tool"], r["n"]): r for r in results}
    counts = sorted({r["n"] for r in results})
    lines = []
    w = lines.append
    w("| hosts | run | provision | ansible | pyinfra | floor | provision/ansible | provision/pyinfra | provision/floor "
      "| cpu provision | cpu ansible | cpu pyinfra | cpu floor | cpu prov/ansible | cpu prov/pyinfra | max RSS provision / ansible / pyinfra (MB) |")
    w("|" + "---|" * 16)
    for n in counts:
        for mode in ("noop", "change"):
            g = {t: (by[(t, n)][mode] if (t, n) in by else []) for t in ("provision", "ansible", "pyinfra", "floor")}
            wall = {t: med(g[t], "wall") for t in g}
            cpu = {t: med(g[t], "cpu") for t in g}
            rss = {t: (max(r["maxrss_kb"] for r in g[t]) / 1024 if g[t] else None) for t in g}
            # The floor is a no-op by nature: it is compared with no-op runs only.
            floor_w = med(by[("floor", n)]["noop"], "wall") if ("floor", n) in by and mode == "noop" else None
            floor_c = med(by[("floor", n)]["noop"], "cpu") if ("floor", n) in by and mode == "noop" else None
            w(f"| {n} | {'no-op' if mode == 'noop' else 'changing'} | {fmt(wall['provision'])} | {fmt(wall['ansible'])} | "
              f"{fmt(wall['pyinfra'])} | {fmt(floor_w)} | {ratio(wall['provision'], wall['ansible'])} | "
              f"{ratio(wall['provision'], wall['pyinfra'])} | {ratio(wall['provision'], floor_w)} | "
              f"{fmt(cpu['provision'])} | {fmt(cpu['ansible'])} | {fmt(cpu['pyinfra'])} | {fmt(floor_c)} | "
              f"{ratio(cpu['provision'], cpu['ansible'])} | {ratio(cpu['provision'], cpu['pyinfra'])} | "
              f"{' / '.join(fmt(rss[t], 'MB') for t in ('provision', 'ansible', 'pyinfra'))} |")
    table = "\n".join(lines)

    # Targets, checked from the numbers above.
    t = []
    for n in counts:
        def wm(tool, mode):
            return med(by[(tool, n)][mode], "wall") if (tool, n) in by and by[(tool, n)][mode] else None
        p, a, y, f = wm("provision", "noop"), wm("ansible", "noop"), wm("pyinfra", "noop"), wm("floor", "noop")
        pc, ac = wm("provision", "change"), wm("ansible", "change")

        def verdict(ok):
            return "**met**" if ok else "**missed**"
        if p and a:
            t.append(f"| {n} | no-op ≥ 30× faster than ansible-core | {a / p:.1f}× | {verdict(a / p >= 30)} |")
        if p and y:
            t.append(f"| {n} | no-op ≥ 8× faster than pyinfra | {y / p:.1f}× | {verdict(y / p >= 8)} |")
        if p and f:
            t.append(f"| {n} | no-op ≤ 1.5× the ssh floor | {p / f:.2f}× ({p:.3f} s vs {f:.3f} s) | {verdict(p / f <= 1.5)} |")
        if pc and ac:
            t.append(f"| {n} | changing run ≥ 5× faster than ansible-core | {ac / pc:.1f}× | {verdict(ac / pc >= 5)} |")
        if ("provision", n) in by:
            rec = by[("provision", n)]
            rts = sorted({x for r in rec["noop"] for x in r["round_trips"]})
            t.append(f"| {n} | no-op: exactly 1 round trip per host | round_trips per host seen: {rts} | {verdict(rts == [1])} |")
            rtc = sorted({x for r in rec["change"] for x in r["round_trips"]})
            if rtc:
                t.append(f"| {n} | changing run: small constant round trips per host | round_trips per host seen: {rtc} | {verdict(max(rtc) <= 3)} |")
            if n == max(counts):
                mx = max(r["maxrss_kb"] for r in rec["noop"] + rec["change"]) / 1024
                t.append(f"| {n} | provision peak memory < 50 MB | {mx:.1f} MB | {verdict(mx < 50)} |")
    targets = "| hosts | target | measured | verdict |\n|---|---|---|---|\n" + "\n".join(t)

    # For each miss, what dominates, from the same numbers.
    why = []
    for n in counts:
        def wm(tool, mode):
            return med(by[(tool, n)][mode], "wall") if (tool, n) in by and by[(tool, n)][mode] else None
        p, a, y, f = wm("provision", "noop"), wm("ansible", "noop"), wm("pyinfra", "noop"), wm("floor", "noop")
        xs = [x for r in by[("provision", n)]["noop"] for x in r["phases_ms"]] if ("provision", n) in by else []
        if not (p and xs):
            continue
        c, pr = statistics.median(x[0] for x in xs), statistics.median(x[1] for x in xs)
        tail = (f"provision's no-op at {n} hosts took {p:.3f} s; per host (median) {c:.0f} ms to connect and {pr:.0f} ms "
                f"for the one probe round trip")
        if y and y / p < 8:
            msg = f"- **{n} hosts, ≥ 8× pyinfra missed:** {tail}. pyinfra took {y:.3f} s, so 8× needs ≤ {y / 8:.3f} s"
            if f and y / 8 < f:
                msg += (f", less than the {f:.3f} s floor itself ({y / 8 / f:.2f}×): the floor is only {y / f:.1f}× faster "
                        "than pyinfra here, so no run that opens its SSH connections (as provision does on every run) can "
                        "meet this target on this machine; connecting dominates")
            elif f:
                msg += (f", which is {y / 8 / f:.2f}× the {f:.3f} s floor: the SSH handshakes that the floor measures, on "
                        "2 cores shared with the hosts, already take most of the budget")
            why.append(msg + ".")
        if a and a / p < 30:
            why.append(f"- **{n} hosts, ≥ 30× ansible-core missed:** {tail}; ansible-core took {a:.3f} s.")
        if f and p / f > 1.5:
            runs = by[("provision", n)]["noop"]
            slow_c = statistics.median(max(x[0] for x in r["phases_ms"]) for r in runs)
            slow_p = statistics.median(max(x[1] for x in r["phases_ms"]) for r in runs)
            slow_cp = statistics.median(max(x[0] + x[1] for x in r["phases_ms"]) for r in runs)
            why.append(f"- **{n} hosts, ≤ 1.5× floor missed:** {tail}; the floor took {f:.3f} s. The wall time follows the "
                       f"slowest host: its connect + probe was {slow_cp:.0f} ms (median over runs; slowest connect {slow_c:.0f} ms, "
                       f"slowest probe {slow_p:.0f} ms). Connecting costs about the floor; the probe round trip on top of it "
                       f"({n} probes at once, on the {os.cpu_count()} cores the hosts share with the controller) is what "
                       "exceeds 1.5×.")
    prof = meta.get("probe_profile")
    if why and prof:
        k, v = max(prof["ms"].items(), key=lambda kv: kv[1])
        why.append(f"- Inside the probe (see *Where provision's time goes*), the costliest command is `{k}` "
                   f"({v:.1f} ms on {prof['host']}); the probe runs the validations of the sudoers drop-in and the unit on "
                   "every run, also when the file on the host already has the wanted content. Running them only when "
                   "the hash differs would shorten every no-op probe; it does not change the connect time.")
    if why:
        targets += "\n\nWhere a target is missed, what dominates (from `provision -v`):\n\n" + "\n".join(why)

    # Where provision's time goes (from -v), medians over hosts and runs.
    ph = ["| hosts | run | connect ms | probe ms | apply ms | sum of phases ms | wall s | round trips/host |", "|---|---|---|---|---|---|---|---|"]
    for n in counts:
        if ("provision", n) not in by:
            continue
        for mode in ("noop", "change"):
            rs = by[("provision", n)][mode]
            xs = [x for r in rs for x in r["phases_ms"]]
            if not xs:
                continue
            c, pr, ap = (statistics.median(x[i] for x in xs) for i in range(3))
            rts = sorted({x for r in rs for x in r["round_trips"]})
            ph.append(f"| {n} | {'no-op' if mode == 'noop' else 'changing'} | {c:.0f} | {pr:.0f} | {ap:.0f} | {c + pr + ap:.0f} | {med(rs, 'wall'):.3f} | {rts} |")
    prof = meta.get("probe_profile")
    if prof:
        ph.append("")
        ph.append(f"Each kind of command the no-op probe runs, timed on {prof['host']} by `date +%s%N` around it "
                  f"(median of {prof['rounds']} rounds, `bench/lib/bench.py --profile`; 1-min load {prof['load1']:.2f}). "
                  "The probe runs each kind once for all resources; the validations of the sudoers drop-in "
                  "and the unit run on every probe, changed or not:")
        ph.append("")
        ph.append("| command | ms |")
        ph.append("|---|---|")
        for k, v in prof["ms"].items():
            ph.append(f"| `{k}` | {v:.1f} |")
    phases = "\n".join(ph)

    tree = ["| hosts | run | provision | ansible | pyinfra | floor |", "|---|---|---|---|---|---|"]
    for n in counts:
        for mode in ("noop", "change"):
            row = []
            for tool in ("provision", "ansible", "pyinfra", "floor"):
                rs = by[(tool, n)][mode] if (tool, n) in by else []
                row.append(f"{max(r['tree_rss_kb'] for r in rs) / 1024:.0f}" if rs else "–")
            tree.append(f"| {n} | {'no-op' if mode == 'noop' else 'changing'} | " + " | ".join(row) + " |")
    tree = "\n".join(tree)

    noop_changes = {(r["tool"], r["n"]): sorted({x["changes"] for x in r["noop"]}, key=str) for r in results if r["tool"] != "floor"}
    chg_changes = {(r["tool"], r["n"]): sorted({x["changes"] for x in r["change"]}, key=str) for r in results if r["tool"] != "floor"}
    nruns = {(r["tool"], r["n"]): (len(r["change"]), len(r["noop"])) for r in results}
    checks = "\n".join(f"- {tool} at {n} hosts: {nruns[(tool, n)][0]} changing run(s) reported {chg_changes[(tool, n)]} changes; "
                       f"{nruns[(tool, n)][1]} no-op runs reported {noop_changes[(tool, n)]}" for (tool, n) in noop_changes)
    loads = ["| hosts | tool | 1-min load average at the start of the runs (min – max) |", "|---|---|---|"]
    for r in results:
        xs = [x["load1"] for x in r["change"] + r["noop"] if "load1" in x]
        if xs:
            loads.append(f"| {r['n']} | {r['tool']} | {min(xs):.2f} – {max(xs):.2f} |")
    checks += "\n\nThe machine's load when each run started (other sessions' tests share the machine and its cores):\n\n" + "\n".join(loads)
    return table, targets, phases, tree, checks


# What a no-op probe of this workload runs on a host, one command kind at a time, each timed
# on the host (date +%s%N around it), to show which part of the probe costs what.
PROFILE = r"""
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export LC_ALL=C
files="$(ls -d /opt/bench/conf.d/* /opt/bench/bin/bench-app /etc/bench/*.conf /etc/bench/bench.env /etc/sudoers.d/bench /etc/systemd/system/bench-app.service)"
paths="$files $(find /opt/bench /etc/bench -maxdepth 1 -type d)"
t() { s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo "$label $(( (e - s) / 1000 ))"; }
label=sh_true t true
label=find_paths t find -P $paths -maxdepth 0 -printf '%p\t%y\t%m\t%u\t%g\t%s\t%l\n'
label=sha256sum_files t sha256sum -- $files
label=dpkg_query t dpkg-query -W -f='${Package}\t${db:Status-Abbrev}\t${Version}\n' -- tree jq sudo openssh-server iproute2 dbus
label=systemctl_show t systemctl show --no-pager -p Id,LoadState,UnitFileState,ActiveState,FragmentPath -- bench-app.service
label=visudo_cf t visudo -cf /etc/sudoers.d/bench
d=$(mktemp -d); cp /etc/systemd/system/bench-app.service $d/
label=systemd_analyze_verify t systemd-analyze verify --man=no $d/bench-app.service
rm -rf $d
"""


def profile_probe(rounds=5):
    """Times the kinds of command a no-op probe runs, on b1 (which must hold the workload)."""
    name, addr = hosts(1)[0]
    samples = {}
    for _ in range(rounds):
        out = subprocess.run(["ssh", *SSH_OPTS, f"root@{addr}", "sh", "-s"], input=PROFILE, capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            k, v = line.split()
            samples.setdefault(k, []).append(int(v) / 1000)
    return {"host": name, "rounds": rounds, "ms": {k: statistics.median(v) for k, v in samples.items()},
            "load1": float(open("/proc/loadavg").read().split()[0])}


def main():
    if sys.argv[1:] == ["--profile"]:
        data = json.load(open(f"{BENCH}/results/results.json"))
        data["meta"]["probe_profile"] = profile_probe()
        write_all(data["meta"], data["results"])
        return
    if sys.argv[1:] == ["--report-only"]:
        data = json.load(open(f"{BENCH}/results/results.json"))
        write_all(data["meta"], data["results"])
        return
    set_subreaper()
    os.makedirs(LOGS, exist_ok=True)
    results = []
    meta = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "versions": {t: tool_version(t) for t in TOOLS + ["floor"]}, "runs": RUNS, "change_runs": CHANGE_RUNS,
            "counts": COUNTS, "command": os.environ.get("BENCH_COMMAND", "bench/run.sh"), "complete": False, "tools": TOOLS}
    if os.environ.get("BENCH_APPEND") == "1":
        # Add these host counts to an earlier bench's results (its other counts are kept).
        old = json.load(open(f"{BENCH}/results/results.json"))
        redo = set(TOOLS) | ({"floor"} if "provision" in TOOLS else set())
        results = [r for r in old["results"] if r["n"] not in COUNTS or r["tool"] not in redo]
        meta["earlier"] = [m for m in old["meta"].get("earlier", []) + [{k: v for k, v in old["meta"].items() if k != "earlier"}]]
        meta["counts"] = sorted({r["n"] for r in results} | set(COUNTS))
        meta["counts_run"] = COUNTS
        meta["versions"] = {**old["meta"].get("versions", {}), **meta["versions"]}
    for n in COUNTS:
        write_inventories(n)
        floor_rec = {"tool": "floor", "n": n, "cmd": command("floor", n)[0], "change": [], "noop": []}
        for tool in TOOLS:
            log(f"--- {tool} at {n} hosts")
            run_tool(tool, n, results, floor_rec if tool == "provision" else None)
            if tool == "provision":
                results.append(floor_rec)
            meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
            write_all(meta, results, quiet=True)  # partial results survive an interrupted bench
        if "provision" not in TOOLS:
            for i in range(RUNS):
                floor_run(n, i, floor_rec)
            results.append(floor_rec)
    if "provision" in TOOLS:
        # b1 holds provision's workload only if provision ran last; converge it again, untimed.
        cmd, cwd, env = command("provision", 1)
        write_inventories(1)
        subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        meta["probe_profile"] = profile_probe()
    meta["complete"] = True
    write_all(meta, results)


def write_all(meta, results, quiet=False):
    with open(f"{BENCH}/results/results.json", "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    table, targets, phases, tree, checks = report(results, meta)
    if not quiet:
        print("\n" + table + "\n")
        print(targets + "\n")
    write_results_md(meta, table, targets, phases, tree, checks)


def write_results_md(meta, table, targets, phases, tree, checks):
    m = meta["machine"]
    meta_counts_new = set(meta.get("counts_run", meta["counts"]))
    notes_path = f"{BENCH}/lib/results-notes.md"
    notes = open(notes_path).read() if os.path.exists(notes_path) else ""
    cfg = open(f"{BENCH}/ansible/ansible.cfg").read()
    text = f"""# Bench results

Generated by `bench/lib/bench.py` (via `bench/run.sh`); do not edit by hand: rerun the bench.

- **Command:** `{meta['command']}` (tools: {', '.join(meta.get('tools', ['provision', 'ansible', 'pyinfra']))}{', floor' if 'provision' in meta.get('tools', ['provision']) else ''}; hosts: {' '.join(str(c) for c in meta.get('counts_run', meta['counts']))}){''.join(chr(10) + f"- **Earlier command, results kept where not rerun:** `{e['command']}` ({e['started']} to {e.get('finished', '?')})" for e in reversed(meta.get('earlier', [])))}
- Each tool's results at a host count come from the latest command above that ran it.
- **Host counts:** {' '.join(map(str, meta['counts']))}; per tool and count: changing runs (each after a reset of the hosts) and no-op runs as counted under *Sanity checks*; figures are medians
- **Machine:** {m['nproc']} cores ({m['cpu']}), {m['mem_gib']} GiB memory, Linux {m['kernel']}. The testbed hosts are containers on the same machine, so hosts and controller share these {m['nproc']} cores.
- **When:** {meta['started']} to {meta.get('finished', '?')}{'' if meta.get('complete') else ' — **the bench was interrupted: partial results**'}
- **Versions:** {'; '.join(f'{k}: {v}' for k, v in meta['versions'].items())}
- **Workload:** 52 resources per host, the same for every tool (`bench/workload/README.md`)

## Results

Wall time in seconds (median), controller CPU in seconds (user+sys of every controller
process of the run, ssh ControlMasters included; median), and the peak RSS of the largest
controller process (for provision: its one process) over all runs. A ratio below 1 means
provision is faster; the floor is `ssh HOST true` to every host in parallel with the same
SSH options, and has no changing run.

{table}

## Targets (issue 6)

{targets}

## Where provision's time goes

From `provision -v` (per host: connect, probe, apply in ms, and remote round trips), medians
over hosts and runs.

{phases}

## Peak memory of the whole controller process tree (MB)

The sum of the RSS of every controller process of a run (Ansible's forks and every ssh
process included), sampled every 50 ms, highest over all runs.

{tree}

## Sanity checks

Changes each tool reported (a no-op run must report 0):

{checks}

## Ansible's settings

`bench/ansible/ansible.cfg` (inventory per host count: `bench/ansible/inventory-N.yml`;
`ansible_python_interpreter` is fixed to `/usr/bin/python3` so no discovery runs). Its
ControlMasters persist 60 s, so each no-op run reuses the connections of the run before it:
Ansible's no-op runs do not pay the SSH handshake, provision's, pyinfra's and the floor's do.

```ini
{cfg.strip()}
```

{notes}
"""
    # The scale bench's section (bench/scale_sim.sh) is its own: kept as it last wrote it.
    scale = f"{BENCH}/results/scale_sim.md"
    if os.path.exists(scale):
        text = text.rstrip("\n") + "\n\n<!-- scale_sim: begin -->\n" + open(scale).read() + "<!-- scale_sim: end -->\n"
    with open(f"{BENCH}/RESULTS.md", "w") as f:
        f.write(text)
    log("wrote bench/RESULTS.md")


if __name__ == "__main__":
    main()
