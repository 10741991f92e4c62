"""Hosts for the multi-host tests: Linux network namespaces on one bridge, one address each.

A namespace `spw-sw` holds the bridge; every host is a namespace `spw-<name>`
with a veth into it and one address of 10.77.0.0/24; the test process itself
(in the root namespace) gets 10.77.0.1 on the same bridge, so its clients and
checks reach every host and nothing else. Partitions are nftables rules in a
host's namespace (this kernel has no tc netem: latency is a proxy, delay.py).
Everything is torn down by down(), and by the next up() if a run was killed.
"""
import subprocess
import time
from pathlib import Path

PREFIX = "spw"
SUBNET = "10.77.0"
ROOT_LINK = f"{PREFIX}-root"


def sh(*argv, check=True):
    """Run a command; its stdout."""
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def available():
    """None if this process can make namespaces and nftables rules, else why not."""
    try:
        sh("ip", "netns", "add", f"{PREFIX}-probe")
        sh("ip", "netns", "del", f"{PREFIX}-probe")
    except (RuntimeError, OSError) as err:
        return f"no network namespaces here ({err})"
    if not Path("/usr/sbin/nft").exists():
        return "nft is not installed (Debian package nftables)"
    return None


class Net:
    """The namespaces of a test cluster."""

    def __init__(self, hosts):
        self.hosts = dict(hosts)  # name -> last octet of its address

    def ns(self, name):
        """The namespace of host `name`."""
        return f"{PREFIX}-{name}"

    def address(self, name):
        """The address of host `name`."""
        return f"{SUBNET}.{self.hosts[name]}"

    def up(self):
        """Make the bridge, every host and the root side (removing what a killed run left first)."""
        self.down()
        sw = self.ns("sw")
        sh("ip", "netns", "add", sw)
        sh("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", sw, "link", "set", "br0", "up")
        for name in self.hosts:
            ns, link = self.ns(name), f"{PREFIX}-{self.hosts[name]}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", link, "netns", sw)
            sh("ip", "-n", sw, "link", "set", link, "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.address(name)}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", ROOT_LINK, "type", "veth", "peer", "name", f"{PREFIX}-rootp", "netns", sw)
        sh("ip", "-n", sw, "link", "set", f"{PREFIX}-rootp", "master", "br0", "up")
        sh("ip", "addr", "add", f"{SUBNET}.1/24", "dev", ROOT_LINK)
        sh("ip", "link", "set", ROOT_LINK, "up")

    def down(self):
        """Kill every process in the namespaces and delete them, and the root side (whatever is left)."""
        names = [n for n in sh("ip", "netns", "list", check=False).split() if n.startswith(f"{PREFIX}-")]
        for ns in names:
            for pid in sh("ip", "netns", "pids", ns, check=False).split():
                subprocess.run(["kill", "-9", pid], capture_output=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(sh("ip", "netns", "pids", ns, check=False).split() for ns in names):
            time.sleep(0.1)
        for ns in names:
            sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", ROOT_LINK, check=False)

    def pids(self, name):
        """The processes running on host `name`."""
        return [int(p) for p in sh("ip", "netns", "pids", self.ns(name), check=False).split()]

    def prefix(self, name):
        """The argv prefix that runs a command on host `name`."""
        return ["ip", "netns", "exec", self.ns(name)]

    def cut(self, name, peers):
        """Host `name` neither sends to nor receives from `peers` (names); the others see it as gone."""
        table = f"table inet {PREFIX}"
        addresses = ", ".join(self.address(p) for p in peers)
        rules = (f"{table} {{\n chain in {{ type filter hook input priority 0; ip saddr {{ {addresses} }} drop; }}\n"
                 f" chain out {{ type filter hook output priority 0; ip daddr {{ {addresses} }} drop; }}\n}}\n")
        self.heal(name)
        subprocess.run([*self.prefix(name), "nft", "-f", "-"], input=rules, text=True, check=True)

    def heal(self, name):
        """Remove every cut on host `name`."""
        sh(*self.prefix(name), "nft", "flush", "ruleset", check=False)
