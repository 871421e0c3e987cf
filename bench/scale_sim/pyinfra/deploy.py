"""The scale bench's workload (provision/roles/simwork/tasks.yml) as a pyinfra deploy:
25 operations per host, all under the host's own directory (`sim_dir`)."""
import io

from pyinfra import host
from pyinfra.operations import files

d = host.data.sim_dir
name = host.data.inventory_hostname
for path, mode in [("", "755"), ("/etc", "755"), ("/etc/conf.d", "755"), ("/bin", "755"), ("/var", "755"),
                   ("/var/log", "750"), ("/var/data", "700"), ("/releases", "755")]:
    files.directory(name=f"directory {d}{path}", path=f"{d}{path}", mode=mode)


def put(path, content, mode):
    files.put(name=f"file {path}", src=io.StringIO(content), dest=path, mode=mode)


put(f"{d}/etc/app.conf", f"# app config for {name}\nname = {name}\nlisten = {host.data.ssh_hostname}:8080\nworkers = 4\n", "644")
for i in ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10"]:
    put(f"{d}/etc/conf.d/{i}.conf", f"# drop-in {i} of {name}\nsetting_{i} = {i}\n", "644")
put(f"{d}/bin/run", f'#!/bin/sh\nexec echo "running {name}"\n', "755")
put(f"{d}/var/data/token", f"token-of-{name}\n", "600")
put(f"{d}/etc/hostname", f"{name}\n", "644")
put(f"{d}/etc/motd", "managed by the scale bench\n", "644")
put(f"{d}/var/log/.keep", "", "640")
files.link(name="current", path=f"{d}/current", target=f"{d}/releases")
