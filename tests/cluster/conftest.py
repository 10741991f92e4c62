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


def _cluster(mode):
    cluster = Cluster(VAR / f"cluster-{mode}", mode)
    try:
        cluster.start()
        yield cluster
    finally:
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
