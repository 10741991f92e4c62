"""The Grafana dashboard and the Prometheus alert rules query series /metrics really exports.

A renamed metric, label or label value would leave a dashboard panel empty and
an alert silent without anyone noticing; here it fails a test. Every series
name in the dashboard's queries and the rules' expressions must be a sample
name on a live /metrics page (with the traffic of a write, a read, a miss and
a drain behind it); every label matcher must name a label (and, for `=`, a
value) those samples carry; rate() and increase() must be given counters and
histogram_quantile() a histogram's buckets. `promtool check rules` and `promtool
test rules` (in `make test`) check the rules' syntax and when they fire.
"""
import json
import re
import time

import pytest
import yaml

from deploy.processes import ROOT, wait_for
from tests.e2e.helpers import FAST, get, item_url, metric, post, post_items, put_row, wait_drained

DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus-alerts.yml"
NAME = r"spillway_[a-zA-Z0-9_:]*"
SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")
SCRAPE_LABELS = {"job", "instance"}  # added by Prometheus when it scrapes


def dashboard_queries():
    """Every PromQL expression of the dashboard's panels, and of its template variables."""
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in board["templating"]["list"] if v.get("definition")]
    return exprs


def alert_expressions():
    rules = yaml.safe_load(ALERTS.read_text())
    return [r["expr"] for group in rules["groups"] for r in group["rules"]]


def exported(page):
    """{sample name: [labels of each sample]} and {family: type} of a Prometheus text page."""
    samples, types = {}, {}
    for line in page.splitlines():
        typed = re.fullmatch(r"# TYPE (\S+) (\S+)", line)
        if typed:
            types[typed.group(1)] = typed.group(2)
            continue
        sample = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if sample:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', sample.group(2) or ""))
            samples.setdefault(sample.group(1), []).append(labels)
    return samples, types


def family_type(name, types):
    """The TYPE of the family a sample name belongs to (a counter's or histogram's suffixes stripped)."""
    if name in types:
        return types[name]
    for suffix in SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in types:
            return types[name[: -len(suffix)]]
    return None


def problems(exprs, samples, types):
    """What in these expressions /metrics does not back: one line per problem."""
    found = []
    for expr in exprs:
        for name in set(re.findall(NAME, expr)):
            if name not in samples:
                found.append(f"{name} is not exported (in: {expr})")
        for name, matchers in re.findall(rf"({NAME})\{{([^}}]*)\}}", expr):
            for label, op, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', matchers):
                if label in SCRAPE_LABELS or name not in samples:
                    continue
                values = {s.get(label) for s in samples[name]} - {None}
                if not values:
                    found.append(f"{name} has no label {label} (in: {expr})")
                elif op == "=" and value not in values:
                    found.append(f'{name} has no sample with {label}="{value}"; it has {sorted(values)} (in: {expr})')
        for name in re.findall(rf"\b(?:rate|increase)\(\s*({NAME})", expr):
            if name not in samples:
                continue  # reported above
            kind = family_type(name, types)
            if not (kind == "counter" or (kind == "histogram" and name.endswith(("_bucket", "_sum", "_count")))):
                found.append(f"rate/increase of {name}, a {kind} (in: {expr})")
        for name in re.findall(rf"histogram_quantile\([^,]+,[^;]*?({NAME})", expr):
            if name in samples and not (name.endswith("_bucket") and family_type(name, types) == "histogram"):
                found.append(f"histogram_quantile over {name}, not a histogram's buckets (in: {expr})")
    return found


@pytest.fixture()
def metrics_page(web, db, rds, start_worker):
    """/metrics after traffic of every kind: writes drained by a worker, hits, misses, lists, a 404."""
    start_worker(**FAST)
    wait_for(lambda: rds.zcard("spillway:drain:alive"), timeout=30, message="a drain to start")
    assert post_items(web, [(f"dash{i}", {"i": i}) for i in range(20)]).status_code == 202
    assert post(web, "/api/v1/events", {"events": [{"name": "dash", "data": {"i": 1}}]}).status_code == 202
    put_row(db, "dash-row", {"n": 1})
    for _ in range(3):  # misses (loaded from MySQL), then hits, on both workers most likely
        for key in ("dash-row", "dash0", "dash-missing"):
            get(item_url(web.url, key))
    get(web.url + "/api/v1/items?limit=5")
    wait_drained(rds)
    return get(web.url + "/metrics").text


def test_every_series_the_dashboard_and_the_alert_rules_query_is_exported(metrics_page):
    samples, types = exported(metrics_page)
    assert problems(dashboard_queries(), samples, types) == [], "the dashboard"
    assert problems(alert_expressions(), samples, types) == [], "the alert rules"
    assert len(dashboard_queries()) > 20 and len(alert_expressions()) >= 8


PAGE = """# HELP spillway_write_queue_depth Records accepted and not yet persisted
# TYPE spillway_write_queue_depth gauge
spillway_write_queue_depth 0.0
# HELP spillway_write_refusals_total Writes the queue refused, nothing queued
# TYPE spillway_write_refusals_total counter
spillway_write_refusals_total{reason="backpressure"} 0.0
# HELP spillway_http_request_duration_seconds Time from request to response
# TYPE spillway_http_request_duration_seconds histogram
spillway_http_request_duration_seconds_bucket{le="0.1",method="GET",route="/healthz"} 1.0
spillway_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/healthz"} 1.0
spillway_http_request_duration_seconds_sum{method="GET",route="/healthz"} 0.01
spillway_http_request_duration_seconds_count{method="GET",route="/healthz"} 1.0
"""


def test_the_check_catches_a_renamed_metric_label_or_value_and_misuse():
    samples, types = exported(PAGE)
    fine = ["max(spillway_write_queue_depth)", 'sum(rate(spillway_write_refusals_total{reason="backpressure"}[5m]))',
            'histogram_quantile(0.9, sum by (le) (rate(spillway_http_request_duration_seconds_bucket{job=~"$job"}[5m])))',
            "rate(spillway_http_request_duration_seconds_sum[5m]) / rate(spillway_http_request_duration_seconds_count[5m])"]
    assert problems(fine, samples, types) == []
    for wrong in ["max(spillway_write_queue_length)",  # a renamed metric
                  "rate(spillway_write_refusals[5m])",  # a counter without its _total
                  'sum(rate(spillway_write_refusals_total{cause="backpressure"}[5m]))',  # a renamed label
                  'sum(rate(spillway_write_refusals_total{reason="too_busy"}[5m]))',  # a value never exported
                  "rate(spillway_write_queue_depth[5m])",  # rate of a gauge
                  "histogram_quantile(0.9, sum by (le) (rate(spillway_write_refusals_total[5m])))"]:
        assert len(problems([wrong], samples, types)) == 1, wrong


# --- the two series added for the alerts ------------------------------------------------------------

def test_a_refused_write_is_counted_by_reason(fresh, start_web):
    web = start_web(WRITE_QUEUE_HIGH_WATER=50)
    assert metric(get(web.url + "/metrics").text, "spillway_write_refusals_total", reason="backpressure") == 0
    assert post_items(web, [(f"a{i}", {}) for i in range(24)]).status_code == 202
    assert post_items(web, [(f"b{i}", {}) for i in range(24)]).status_code == 202
    assert post_items(web, [(f"c{i}", {}) for i in range(24)]).status_code == 503
    page = get(web.url + "/metrics").text
    assert metric(page, "spillway_write_refusals_total", reason="backpressure") == 1
    assert metric(page, "spillway_write_refusals_total", reason="queue_unavailable") == 0


def test_the_breaker_gauge_is_1_while_reads_fail_fast_and_0_once_mysql_answers(fresh, start_web, servers_restored):
    web = start_web(WEB_WORKERS=1, DB_RETRY_INTERVAL=1)
    assert get(item_url(web.url, "first-miss")).status_code == 404  # the pool exists: the gauge is exported
    assert metric(get(web.url + "/metrics").text, "spillway_db_breaker_open", database="primary") == 0
    servers_restored.mariadb.stop()
    for n in range(4):  # three connection failures in a row open the breaker
        assert get(item_url(web.url, f"miss-{n}")).status_code == 503
    assert metric(get(web.url + "/metrics").text, "spillway_db_breaker_open", database="primary") == 1
    servers_restored.mariadb.start()
    time.sleep(1.1)  # the cooldown: the next miss is the probe
    wait_for(lambda: get(item_url(web.url, "after")).status_code == 404, timeout=30, interval=0.5,
             message="reads of MySQL to work again")
    assert metric(get(web.url + "/metrics").text, "spillway_db_breaker_open", database="primary") == 0
