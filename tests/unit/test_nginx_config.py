"""deploy/nginx.conf retries another host only when one could not be reached, never on Spillway's own 503s.

With http_503 in proxy_next_upstream, a MySQL outage (every host answers 503)
counted toward max_fails and marked every host down: cached reads got 502.
"""
import re

from webapp.config import ROOT


def test_nginx_passes_spillways_503_answers_through_instead_of_marking_hosts_down():
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    directives = re.findall(r"^\s*proxy_next_upstream\s+([^;]+);", conf, re.M)
    assert directives, "deploy/nginx.conf sets no proxy_next_upstream"
    for value in directives:
        assert not {"http_503", "http_502", "http_500", "non_idempotent"} & set(value.split()), value
