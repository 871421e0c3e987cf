"""pyinfra inventory for the bench: hosts b1..bN (N from $BENCH_N) at 10.77.0.101.., with
the same SSH settings as provision, Ansible and the floor (testbed key, strict host key
checking against the testbed's known_hosts)."""
import os

_n = int(os.environ.get("BENCH_N", "1"))
_state = os.environ.get("PROVISION_TESTBED", "/var/lib/provision-testbed")

bench = (
    [
        (
            f"b{i}",
            {
                "ssh_hostname": f"10.77.0.{100 + i}",
                "ssh_user": "root",
                "ssh_key": f"{_state}/id_ed25519",
                "ssh_known_hosts_file": f"{_state}/known_hosts",
                "ssh_strict_host_key_checking": "yes",
                "ssh_connect_timeout": 10,
                "inventory_hostname": f"b{i}",
            },
        )
        for i in range(1, _n + 1)
    ],
    {},
)
