"""A web host whose clock is off still accepts writes: the deadline is sent in Redis's clock.

Before, the accept script compared the web host's deadline with Redis's clock:
a web host 2 s behind answered 503 to every write.
"""
import glob

import pytest

from tests.e2e.helpers import STREAM, post_items

LIBFAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))


@pytest.mark.skipif(not LIBFAKETIME, reason="libfaketime is not installed (deploy/sysdeps.sh installs it)")
@pytest.mark.parametrize("offset", ["-2s", "+3s"])
def test_writes_are_accepted_from_a_web_host_whose_clock_is_off(fresh, rds, start_web, offset):
    web = start_web(LD_PRELOAD=LIBFAKETIME[0], FAKETIME=offset)  # its monotonic clock shifts alike: harmless
    for n in range(5):
        assert post_items(web, [(f"k{n}", {"n": n})]).status_code == 202
    assert rds.xlen(STREAM) == 5
