"""A few seconds of the load test (``python -m bench.load``): clients at once, no errors."""

import re
import sys

from conftest import ROOT, run
from trained import model_file


def test_a_short_load_test_has_no_errors(tmp_path_factory):
    model = model_file(tmp_path_factory)
    command = [sys.executable, "-m", "bench.load", "--model", str(model), "--clients", "5", "--seconds", "3"]
    result = run(command, ROOT)
    summary = re.search(r"5 clients, .*: (\d+) requests, (\d+) errors, .*p95 ([\d.]+) ms", result.stdout)
    assert summary, result.stdout
    requests, errors, _ = summary.groups()
    assert int(errors) == 0 and int(requests) >= 50  # 5 clients at up to 10 requests/s each, for 3 s
