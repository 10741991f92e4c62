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


def test_nginx_passes_a_clients_request_id_on_and_makes_one_only_when_there_is_none_spillway_takes():
    import re as regex

    from webapp.server.observe import _SANE_ID

    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    block = regex.search(r"^map \$http_x_request_id \$req_id \{(.*?)^\}", conf, regex.M | regex.S)
    assert block, "no map from the client's X-Request-ID"
    entries = dict(regex.findall(r'^\s*("[^"]*"|\S+)\s+(\S+);', block[1], regex.M))
    assert entries.pop("default") == "$request_id"  # none sent: nginx makes one
    ((pattern, value),) = entries.items()
    assert value == "$http_x_request_id"
    nginx_keeps = regex.compile(pattern.strip('"').removeprefix("~"))
    for sample in ["abc-123", "0f" * 16, "a" * 128, "a" * 129, "", "with space", "semi;colon", "\u00e9t\u00e9"]:
        assert bool(nginx_keeps.match(sample)) == bool(_SANE_ID.match(sample)), sample  # the same rule as Spillway
    for line in regex.findall(r"^\s*(?:proxy_set_header|add_header)\s+X-Request-ID\s+([^\s;]+)", conf, regex.M):
        assert line == "$req_id", "a request id that overwrites the client's"
    assert regex.search(r"^\s*proxy_hide_header\s+X-Request-ID;", conf, regex.M)  # one X-Request-ID in answers
