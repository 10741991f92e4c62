"""deploy/: every alert has a runbook that exists and promtool tests that make it fire and stay quiet;
Prometheus scrapes each web host nginx balances over, directly.

`promtool check rules`, `check config` and `test rules` (in `make test`) check syntax and when
alerts fire; these check what promtool cannot: links into the docs and coverage.
"""
import re

import yaml

from webapp.config import ROOT

DEPLOY = ROOT / "deploy"


def alerts():
    rules = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())
    return [r for group in rules["groups"] for r in group["rules"] if "alert" in r]


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_alert_links_a_runbook_section_that_exists():
    docs = (ROOT / "docs" / "operations.md").read_text()
    anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", docs, re.M)}
    for rule in alerts():
        url = rule["annotations"].get("runbook_url", "")
        path, _, anchor = url.partition("#")
        assert path == "docs/operations.md" and anchor in anchors, f"{rule['alert']}: {url!r}"
        assert rule["alert"] in docs, f"{rule['alert']} is not named in docs/operations.md"


def test_every_alert_has_promtool_tests_where_it_fires_and_where_it_does_not():
    tests = yaml.safe_load((DEPLOY / "prometheus-alerts.test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for rule in alerts():
        outcomes = [bool(c["exp_alerts"]) for c in cases if c["alertname"] == rule["alert"]]
        assert True in outcomes and False in outcomes, f"{rule['alert']}: fires {outcomes.count(True)}, quiet " \
                                                       f"{outcomes.count(False)}"


def test_prometheus_scrapes_every_upstream_host_directly_in_the_job_the_rules_name():
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert config["rule_files"] == ["prometheus-alerts.yml"]
    (job,) = config["scrape_configs"]
    targets = [t for static in job["static_configs"] for t in static["targets"]]
    block = re.search(r"^upstream spillway_web \{(.*?)^\}", (DEPLOY / "nginx.conf").read_text(), re.M | re.S)[1]
    upstream = re.findall(r"^\s*server\s+(\S+?)[\s;]", block, re.M)
    assert upstream and sorted(targets) == sorted(upstream)  # the web hosts, not nginx's address
    assert job.get("metrics_path", "/metrics") == "/metrics"
    exprs = [r["expr"] for r in alerts()]
    assert 'up{job="spillway"} == 0' in exprs and 'absent(up{job="spillway"})' in exprs
    assert job["job_name"] == "spillway"
