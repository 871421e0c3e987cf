#!/usr/bin/env python3
"""The scale bench driver (called by bench/scale_sim.sh once the venv and the simulated
hosts are up). For each host count N: the floor (`ssh HOST true` to every host, FORKS at a
time), then for each tool a changing run on empty host directories and no-op runs.

Measurement of one run: wall time from spawn to the exit of the tool's process; controller
CPU (user+sys of the whole process tree); and the peak, sampled every 0.2 s, of the summed
RSS and the summed PSS of every process of the run's tree. This process is a child
subreaper, so daemonized ssh ControlMasters (provision's, Ansible's) stay in the tree and
are counted. PSS splits pages shared between processes (the ssh binary and libraries over
hundreds of ssh processes), so it is the memory the run really costs; RSS double counts.
What a run leaves behind (Ansible's ControlPersist masters) is ended after it, by pid.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from proctree import descendants, kill_leftovers, proc_table, pss_kb, reap, set_subreaper, tree_cpu  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
ROOT = os.path.dirname(BENCH)
STATE = os.environ.get("PROVISION_TESTBED", "/var/lib/provision-testbed")
KEY = f"{STATE}/id_ed25519"
KNOWN = f"{STATE}/sim/known_hosts"
VENV = os.environ["BENCH_VENV"] + "/bin"
PROVISION = os.environ["PROVISION_BIN"]
COUNTS = [int(x) for x in os.environ.get("BENCH_HOSTS", "100 500").split()]
FORKS = int(os.environ.get("BENCH_FORKS", "50"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
TOOLS = os.environ.get("BENCH_TOOLS", "provision pyinfra ansible").split()
ANSIBLE_MAX = int(os.environ.get("BENCH_ANSIBLE_MAX_HOSTS", "100"))
TIMEOUT = int(os.environ.get("BENCH_TIMEOUT", "1200"))
# Per tool: BENCH_TIMEOUT_PYINFRA=600 ... A run that times out is killed and reported as a
# lower bound ("> T s"), which is what a ratio target needs.
TIMEOUTS = {t: int(os.environ.get(f"BENCH_TIMEOUT_{t.upper()}", TIMEOUT)) for t in ["floor", "provision", "pyinfra", "ansible"]}
# The tools that also get a changing run (default: all). A tool left out runs its no-op on
# the hosts as provision's runs left them: the same end state, as the workloads are the same.
CHANGING = os.environ.get("BENCH_CHANGING_TOOLS", "provision pyinfra ansible").split()
WORK = f"{os.environ.get('BENCH_WORK', '/tmp/pv-scale-bench')}"
SSH_OPTS = ["-i", KEY, "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={KNOWN}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=10", "-o", "BatchMode=yes"]


def log(msg):
    print(f"scale bench: {msg}", file=sys.stderr, flush=True)


def addr(i):
    o = i + 1
    return f"10.77.{4 + o // 256}.{o % 256}"


# ------------------------------------------------------------------ measuring


def measure(cmd, cwd, env, logfile, timeout=TIMEOUT):
    kill_leftovers(0.5)
    peak = {"rss": 0, "pss": 0, "procs": 0, "stop": False}

    def sampler():
        me = os.getpid()
        while not peak["stop"]:
            t = proc_table()
            ds = descendants(t, me)
            peak["rss"] = max(peak["rss"], sum(t[p][2] for p in ds))
            peak["pss"] = max(peak["pss"], sum(pss_kb(p) for p in ds))
            peak["procs"] = max(peak["procs"], len(ds))
            time.sleep(0.2)

    load = float(open("/proc/loadavg").read().split()[0])
    cpu0 = tree_cpu()
    with open(logfile, "w") as out:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        timed_out = False
        while True:
            pid, status, _ = os.wait4(-1, os.WNOHANG)
            if pid == p.pid:
                break
            if pid == 0:
                if time.monotonic() - t0 > timeout and not timed_out:
                    timed_out = True
                    p.kill()
                time.sleep(0.02)
        wall = time.monotonic() - t0
        rc = os.waitstatus_to_exitcode(status)
    time.sleep(0.3)
    peak["stop"] = True
    th.join()
    cpu = tree_cpu() - cpu0
    kill_leftovers(0.5)
    return {"wall": wall, "cpu": cpu, "rss_mb": peak["rss"] / 1024, "pss_mb": peak["pss"] / 1024,
            "procs": peak["procs"], "rc": rc, "timed_out": timed_out, "load1": load,
            "log": os.path.relpath(logfile, ROOT)}


# ------------------------------------------------------------------ tools

def reset(n):
    """Empty host directories: the changing run creates all 25 resources on every host."""
    for i in range(1, n + 1):
        shutil.rmtree(f"/srv/sim/s{i}", ignore_errors=True)


def write_inputs(n):
    d = f"{WORK}/n{n}"
    os.makedirs(f"{d}/provision/inventories", exist_ok=True)
    link = f"{d}/provision/roles"
    if not os.path.islink(link):
        os.symlink(f"{HERE}/provision/roles", link)
    inv = subprocess.run([f"{ROOT}/tests/testbed.sh", "sim", "inventory", str(n), "simwork"],
                         check=True, capture_output=True, text=True).stdout
    with open(f"{d}/provision/inventories/sim.yml", "w") as f:
        f.write(inv)
    os.makedirs(f"{d}/pyinfra", exist_ok=True)
    with open(f"{d}/pyinfra/inventory.py", "w") as f:
        f.write("sim = ([\n")
        for i in range(1, n + 1):
            f.write(f"    ('s{i}', {{'ssh_hostname': '{addr(i)}', 'inventory_hostname': 's{i}', 'sim_dir': '/srv/sim/s{i}'}}),\n")
        f.write(f"], {{'ssh_user': 'root', 'ssh_key': '{KEY}', 'ssh_known_hosts_file': '{KNOWN}',"
                " 'ssh_strict_host_key_checking': 'yes', 'ssh_connect_timeout': 10})\n")
    shutil.copy(f"{HERE}/pyinfra/deploy.py", f"{d}/pyinfra/deploy.py")
    os.makedirs(f"{d}/ansible", exist_ok=True)
    with open(f"{d}/ansible/inventory.yml", "w") as f:
        f.write("all:\n  vars: {ansible_user: root, ansible_ssh_private_key_file: " + KEY + "}\n  hosts:\n")
        for i in range(1, n + 1):
            f.write(f"    s{i}: {{ansible_host: {addr(i)}, sim_dir: /srv/sim/s{i}}}\n")
    with open(f"{d}/ansible/ansible.cfg", "w") as f:
        f.write(f"""# generated by bench/scale_sim/scale.py: forks as for the other tools, pipelining on,
# no fact gathering, ControlPersist as Ansible's default (60 s); remote temp files in /tmp,
# which each simulated host has its own of.
[defaults]
forks = {FORKS}
gathering = explicit
host_key_checking = True
interpreter_python = /usr/bin/python3
retry_files_enabled = False
deprecation_warnings = False
remote_tmp = /tmp/.ansible-tmp
[ssh_connection]
pipelining = True
control_path_dir = {d}/ansible/cp
ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={KNOWN} -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=10 -o BatchMode=yes
""")
    shutil.copy(f"{HERE}/ansible/site.yml", f"{d}/ansible/site.yml")
    return d


def command(tool, n, d):
    env = dict(os.environ, NO_COLOR="1")
    if tool == "provision":
        return [PROVISION, "inventories/sim.yml", "--forks", str(FORKS), "--format", "json"], f"{d}/provision", env
    if tool == "pyinfra":
        return [f"{VENV}/pyinfra", "inventory.py", "deploy.py", "-y", "--parallel", str(FORKS)], f"{d}/pyinfra", env
    if tool == "ansible":
        env["ANSIBLE_CONFIG"] = f"{d}/ansible/ansible.cfg"
        env["ANSIBLE_HOME"] = f"{d}/ansible/home"  # not the controller's ~/.ansible
        return [f"{VENV}/ansible-playbook", "-i", "inventory.yml", "site.yml"], f"{d}/ansible", env
    if tool == "floor":
        script = ("printf '%s\\n' " + " ".join(addr(i) for i in range(1, n + 1)) +
                  f" | xargs -P {FORKS} -I{{}} ssh " + " ".join(SSH_OPTS) + " root@{} true")
        return ["sh", "-c", script], d, env
    raise ValueError(tool)


def provision_check(res, noop):
    """Round trips and changes per host, from provision's JSON report."""
    try:
        j = json.load(open(os.path.join(ROOT, res["log"])))
    except (OSError, ValueError):
        return "report unreadable"
    rts = sorted({h["round_trips"] for h in j["hosts"]})
    changes = j["summary"]["changes"]
    res["round_trips"], res["changes"] = rts, changes
    return None if (not noop or (rts == [1] and changes == 0)) else f"round trips {rts}, {changes} changes"


def main():
    set_subreaper()
    os.makedirs(f"{BENCH}/results/scale_logs", exist_ok=True)
    results = {}
    machine = (f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB, "
               f"Linux {os.uname().release}; hosts and controller share these cores, and other work ran on the machine "
               "(load average at each run's start in bench/results/scale_sim.json)")
    versions = {}
    for name, cmd in [("provision", [PROVISION, "--version"]), ("pyinfra", [f"{VENV}/pyinfra", "--version"]),
                      ("ansible", [f"{VENV}/ansible-playbook", "--version"]), ("ssh", ["ssh", "-V"])]:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            versions[name] = ((p.stdout or p.stderr).strip().splitlines() or ["?"])[0]
        except OSError:
            versions[name] = "?"
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())

    def save():
        # After every tool, so that an interrupted bench keeps what it measured.
        finished = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        out = {"started": started, "finished": finished, "forks": FORKS, "runs": RUNS, "results": results,
               "command": os.environ.get("BENCH_COMMAND", "bench/scale_sim.sh"), "machine": machine, "versions": versions}
        with open(f"{BENCH}/results/scale_sim.json", "w") as f:
            json.dump(out, f, indent=1, default=str)
        return out
    for n in COUNTS:
        d = write_inputs(n)
        r = results[n] = {}

        def run(tool, kind, i=0):
            cmd, cwd, env = command(tool, n, d)
            res = measure(cmd, cwd, env, f"{BENCH}/results/scale_logs/{tool}-{kind}-{n}-{i}.log", TIMEOUTS[tool])
            res["tool"], res["kind"] = tool, kind
            if tool == "provision":
                res["problem"] = provision_check(res, kind == "no-op")
            log(f"{n} hosts {tool} {kind}: {res['wall']:.2f} s wall, {res['cpu']:.1f} s cpu, "
                f"peak {res['pss_mb']:.0f} MB PSS / {res['rss_mb']:.0f} MB RSS, {res['procs']} procs, rc={res['rc']}"
                + (" TIMED OUT" if res["timed_out"] else ""))
            return res

        r["floor"] = {"no-op": [run("floor", "no-op", i) for i in range(RUNS)]}
        save()
        # provision first: its converged hosts are where a tool without a changing run starts.
        for tool in sorted(TOOLS, key=lambda t: t != "provision"):
            if tool == "ansible" and n > ANSIBLE_MAX:
                log(f"{n} hosts: ansible skipped (BENCH_ANSIBLE_MAX_HOSTS={ANSIBLE_MAX})")
                continue
            r[tool] = {}
            if tool in CHANGING:
                reset(n)
                r[tool]["changing"] = [run(tool, "changing")]
            runs = RUNS if tool == "provision" else 1
            r[tool]["no-op"] = [run(tool, "no-op", i) for i in range(runs)]
            save()
    report(save())


class Bound(float):
    """A lower bound: the run was killed at its timeout."""


def med(rs, key):
    return statistics.median(x[key] for x in rs)


def report(out):
    """The results as a Markdown section: printed, written to bench/results/scale_sim.md and
    spliced into bench/RESULTS.md between its markers (bench/lib/bench.py keeps it there)."""
    L = []
    L.append("## Scale: 100 and 500 simulated hosts (issue 14)")
    L.append("")
    L.append("Generated by `bench/scale_sim/scale.py` (via `bench/scale_sim.sh`); the notes below the")
    L.append("tables are `bench/scale_sim/notes.md`.")
    L.append("")
    L.append(f"- **Command:** `{out.get('command', 'bench/scale_sim.sh')}`")
    L.append(f"- **When:** {out['started']} to {out['finished']}")
    if out.get("machine"):
        L.append(f"- **Machine:** {out['machine']}")
    if out.get("versions"):
        L.append("- **Versions:** " + "; ".join(f"{k}: {v}" for k, v in out["versions"].items()))
    L.append(f"- **Hosts:** simulated (`tests/testbed.sh sim`: an sshd per network namespace, on this machine). "
             f"**Parallelism:** {out['forks']} for every tool (`--forks`, `--parallel`, Ansible's `forks`) and the floor (`xargs -P`).")
    L.append(f"- **Runs:** the floor and provision's no-op {out['runs']} times (median), every other run once; "
             "each changing run starts from empty host directories.")
    L.append("- **Workload:** 25 resources per host (8 directories, 16 files with content and modes, a link) under "
             "`/srv/sim/NAME`, the same for every tool (`bench/scale_sim/{provision,pyinfra,ansible}`).")
    L.append("")
    L.append("Wall time in seconds; ratios of wall times; the peak PSS of the controller's whole process tree "
             "(the tool, its forks and every ssh process it started, ControlMasters included), sampled every 0.2 s; "
             "controller CPU (user+sys of that tree).")
    L.append("")
    L.append("| hosts | run | floor | provision | pyinfra | ansible | provision/floor | pyinfra/provision | ansible/provision | peak PSS provision / pyinfra / ansible / floor (MB) | provision PSS per host (MB) | cpu provision / pyinfra / ansible / floor (s) |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    for n, r in out["results"].items():
        for kind in ["no-op", "changing"]:
            def g(tool, key="wall"):
                rs = r.get(tool, {}).get(kind)
                if not rs:
                    return None
                if any(x["timed_out"] for x in rs):
                    # Killed at its timeout: the wall time is a lower bound, nothing else is a result.
                    return Bound(min(x["wall"] for x in rs)) if key == "wall" else None
                if any(x["rc"] != 0 for x in rs):
                    return "fail"
                return med(rs, key)

            def f(v, p=2):
                if isinstance(v, Bound):
                    return f"> {float(v):.0f} (timed out)"
                return "–" if v is None else ("failed" if v == "fail" else f"{v:.{p}f}")

            def ratio(a, b):
                if not isinstance(a, float) or not isinstance(b, float):
                    return "–"
                return ("≥ " if isinstance(a, Bound) else "") + f"{a / b:.2f}"

            fl = g("floor") if kind == "no-op" else None
            pv, py, an = g("provision"), g("pyinfra"), g("ansible")
            mem = " / ".join(f(g(t, "pss_mb"), 0) for t in ["provision", "pyinfra", "ansible"]) + " / " + (f(g("floor", "pss_mb"), 0) if kind == "no-op" else "–")
            per_host = g("provision", "pss_mb")
            cpu = " / ".join(f(g(t, "cpu"), 1) for t in ["provision", "pyinfra", "ansible"]) + " / " + (f(g("floor", "cpu"), 1) if kind == "no-op" else "–")
            L.append(f"| {n} | {kind} | {f(fl)} | {f(pv)} | {f(py)} | {f(an)} | {ratio(pv, fl)} | {ratio(py, pv)} | {ratio(an, pv)} | {mem} | "
                     f"{f(per_host / int(n) if isinstance(per_host, float) else None, 3)} | {cpu} |")
            if kind == "no-op" and isinstance(pv, float):
                if isinstance(fl, float):
                    verdicts.append((n, "no-op within 1.5× the floor", f"{pv / fl:.2f}× ({pv:.2f} s vs {fl:.2f} s)", pv <= 1.5 * fl))
                if isinstance(py, float):
                    bound = "at least " if isinstance(py, Bound) else ""
                    verdicts.append((n, "no-op at least 5× faster than pyinfra",
                                     f"{bound}{py / pv:.1f}× ({pv:.2f} s vs {'more than ' if bound else ''}{py:.2f} s)", py >= 5 * pv))
                rts = sorted({t for x in r["provision"]["no-op"] for t in x.get("round_trips", [])})
                verdicts.append((n, "no-op: one round trip per host", f"round trips per host seen: {rts}", rts == [1]))
                pss = g("provision", "pss_mb")
                if isinstance(pss, float):
                    verdicts.append((n, "controller memory per host (no-op, stated)",
                                     f"{pss:.0f} MB PSS peak / {n} hosts = {pss / int(n):.3f} MB a host ({g('provision', 'rss_mb'):.0f} MB RSS)", None))
    L.append("")
    L.append("| hosts | target | measured | verdict |")
    L.append("|---|---|---|---|")
    for n, what, measured, ok in verdicts:
        L.append(f"| {n} | {what} | {measured} | {'–' if ok is None else ('**met**' if ok else '**missed**')} |")
    L.append("")
    notes = f"{HERE}/notes.md"
    if os.path.exists(notes):
        L.append(open(notes).read().strip())
        L.append("")
    text = "\n".join(L) + "\n"
    print(text)
    with open(f"{BENCH}/results/scale_sim.md", "w") as f:
        f.write(text)
    splice_results_md(text)


BEGIN, END = "<!-- scale_sim: begin -->", "<!-- scale_sim: end -->"


def splice_results_md(text):
    path = f"{BENCH}/RESULTS.md"
    md = open(path).read() if os.path.exists(path) else "# Bench results\n"
    block = f"{BEGIN}\n{text}{END}\n"
    if BEGIN in md and END in md:
        md = md[:md.index(BEGIN)] + block + md[md.index(END) + len(END) + 1:]
    else:
        md = md.rstrip("\n") + "\n\n" + block
    with open(path, "w") as f:
        f.write(md)


if __name__ == "__main__":
    if sys.argv[1:] == ["--report"]:
        with open(f"{BENCH}/results/scale_sim.json") as f:
            report(json.load(f))
    else:
        main()
