"""The multi-host tests' cluster: one per durability mode, shared by that mode's fault tests, always torn down.

They need root (network namespaces, nftables), as CI has. `make test-cluster`
runs them alone; `make test` includes them. Each test leaves the cluster whole
again (cuts healed, killed servers restarted) for the next.
"""
import json
import os

import pytest

from tests.cluster.cluster import Cluster
from tests.cluster.net import available
from tests.e2e.helpers import VAR

RESULTS = VAR / "cluster-results.json"


@pytest.fixture(scope="session")
def can_make_hosts():
    why = "not root" if os.geteuid() != 0 else available()
    if why:
        pytest.fail(f"the multi-host tests cannot run here: {why}")


_running: list[Cluster] = []  # the cluster up now: the clusters share the hosts' names and addresses


def _cluster(mode):
    # pytest ends a module-scoped fixture only when the module's tests are all done, so without this the
    # second mode's cluster would come up while the first one is still up (and its hosts are taken over)
    while _running:
        _running.pop().stop()
    cluster = Cluster(VAR / f"cluster-{mode}", mode)
    _running.append(cluster)
    try:
        cluster.start()
        yield cluster
    finally:
        if cluster in _running:
            _running.remove(cluster)
            cluster.stop()


@pytest.fixture(scope="module")
def replica_cluster(can_make_hosts):
    yield from _cluster("replica")


@pytest.fixture(scope="module")
def aof_cluster(can_make_hosts):
    yield from _cluster("aof")


@pytest.fixture(scope="session")
def results():
    """What each fault cost, by mode, kept in var/test/cluster-results.json for docs/guarantees.md."""
    found = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    yield found
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(found, indent=2, sort_keys=True))
