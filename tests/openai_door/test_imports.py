"""The HTTP door stands without the gRPC stack: importing it loads no grpc module (it took
`new_request_id` from api/servicer.py, which dragged grpc in; the id now lives in request_ids.py,
shared by both doors)."""

from __future__ import annotations

import subprocess
import sys


def test_the_door_imports_no_grpc() -> None:
    probe = (
        "import sys, router_service.openai_door.server;"
        "print(sorted(m for m in sys.modules"
        " if m == 'grpc' or m.startswith(('grpc.', 'router_service.api.servicer'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_both_doors_share_one_request_id_format() -> None:
    from router_service import request_ids
    from router_service.api import servicer

    assert servicer.new_request_id is request_ids.new_request_id
    assert servicer.request_id_for is request_ids.request_id_for
    made = request_ids.new_request_id()
    assert len(made) == 32 and made[12] == "4" and made[16] in "89ab"  # a UUID4's hex
    assert request_ids.request_id_for("caller-id.1") == "caller-id.1"
    assert request_ids.request_id_for("not valid!") != "not valid!"
