"""The controller's process tree, measured: CPU and memory of this process and everything
it started (ssh masters included, kept in the tree by the child subreaper), and cleaning
up what runs left behind. Shared by bench/lib/bench.py and bench/scale_sim/scale.py."""

import ctypes
import os
import resource
import signal
import time

CLK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
PR_SET_CHILD_SUBREAPER = 36


def set_subreaper():
    """Daemonized children (ssh -f masters) stay in our tree instead of going to init."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def proc_table():
    """pid -> (ppid, cpu seconds incl. reaped children, rss kB) for every process."""
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        table[int(d)] = (int(rest[1]), sum(int(x) for x in rest[11:15]) / CLK, int(rest[21]) * PAGE_KB)
    return table


def descendants(table, root):
    kids = {}
    for pid, (ppid, _, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_cpu():
    t = proc_table()
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime + sum(t[p][1] for p in descendants(t, os.getpid()))


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_leftovers(settle=0.3):
    """Ends what runs left behind (Ansible's ControlPersist masters): our own descendants, by pid."""
    for p in descendants(proc_table(), os.getpid()):
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    time.sleep(settle)
    reap()
