"""The OpenAPI document is true: every route is in it, and a fuzz run finds no 5xx and no drift."""
import re
import subprocess
import sys
from pathlib import Path

import schemathesis

from tests.e2e.helpers import API_KEY, get


def test_every_route_is_documented_and_every_documented_route_exists(app):
    documented = {(path, method.upper()) for path, ops in app.test_client().get("/openapi.json").json["paths"].items()
                  for method in ops}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?_?(\w+)>", r"{\1}", rule.rule)
        routed |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed == documented


def test_the_document_is_openapi_3_1(shared_web):
    doc = get(shared_web.url + "/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(doc)  # loads (and so parses) as a valid document


# Every check but positive_data_acceptance, which assumes any schema-valid value
# must be accepted: an opaque cursor cannot be described by a schema, so a
# made-up one is rightly a 422.
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,negative_data_rejection,missing_required_header,unsupported_method,"
          "allow_header_conformance,use_after_free,ensure_resource_availability,ignored_auth")


def test_schemathesis_fuzz_finds_no_5xx_and_no_drift_from_the_document(fresh, start_web):
    web = start_web(REQUEST_LOG="false")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", f"{web.url}/openapi.json", "--checks", CHECKS,
         "--max-examples", "30", "--generation-deterministic", "--header", f"Authorization: Bearer {API_KEY}",
         "--request-timeout", "10", "--no-color"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
