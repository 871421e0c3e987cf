"""The bench workload (bench/workload/README.md) as a pyinfra deploy."""
import io

from pyinfra import host
from pyinfra.operations import apt, files, server, systemd

PORT, WORKERS, TAGS = 8080, 4, ["alpha", "beta", "gamma"]
DIRS = ["bin", "conf.d", "data", "lib", "logs", "run", "share", "spool", "cache", "tmp", "backup", "state"]
STATIC = [f"static-{i:02d}.conf" for i in range(1, 19)]
FRAGMENTS = list(range(1, 11))
tvars = dict(inventory_hostname=host.data.inventory_hostname, bench_port=PORT, bench_workers=WORKERS, bench_tags=TAGS)
own = dict(user="root", group="root")
SUDOERS = "# managed by the bench\n%adm ALL=(root) NOPASSWD: /usr/bin/systemctl restart bench-app, /usr/bin/systemctl status bench-app\n"

apt.packages(name="packages", packages=["tree", "jq", "sudo", "openssh-server", "iproute2", "dbus"])

for d in ["/opt/bench", "/etc/bench"]:
    files.directory(name=f"directory {d}", path=d, mode="755", **own)
for d in DIRS:
    files.directory(name=f"directory /opt/bench/{d}", path=f"/opt/bench/{d}", mode="755", **own)

config = []
for f in STATIC:
    config.append(files.put(name=f"file {f}", src=f"files/{f}", dest=f"/opt/bench/conf.d/{f}", mode="644", **own))
config.append(files.put(name="the service's script", src="files/bench-app", dest="/opt/bench/bin/bench-app", mode="755", **own))
for i in FRAGMENTS:
    config.append(files.template(name=f"fragment {i}", src="templates/fragment.conf.j2", dest=f"/etc/bench/fragment-{i}.conf", mode="644", item=i, **own, **tvars))
config.append(files.template(name="the service's environment", src="templates/bench.env.j2", dest="/etc/bench/bench.env", mode="644", **own, **tvars))

# pyinfra's files.put has no `validate`: stage the rule, check it with visudo, then install
# it, only when the staged copy changed; the last operation keeps owner and mode right.
staged = files.put(
    name="sudoers rule staged",
    src=io.StringIO(SUDOERS),
    dest="/opt/bench/tmp/sudoers-bench", mode="600", **own)
server.shell(
    name="sudoers rule validated and installed",
    commands=["visudo -cf /opt/bench/tmp/sudoers-bench && install -o root -g root -m 0440 /opt/bench/tmp/sudoers-bench /etc/sudoers.d/bench"],
    _if=staged.did_change)
files.file(name="sudoers rule", path="/etc/sudoers.d/bench", mode="440", **own)

unit = files.template(name="the unit file", src="templates/bench-app.service.j2", dest="/etc/systemd/system/bench-app.service", mode="644", **own, **tvars)
config.append(unit)
systemd.daemon_reload(name="daemon-reload", _if=unit.did_change)
systemd.service(name="bench-app runs", service="bench-app", running=True, enabled=True)
systemd.service(name="restart bench-app", service="bench-app", running=True, restarted=True,
                _if=lambda: any(op.did_change() for op in config))
