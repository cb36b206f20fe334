"""The long fuzz run: tests/web/test_web_fuzz.py's checks on many thousands of cases.

    python benchmarks/fuzz.py [--reader 20000] [--upload 5000] [--json benchmarks/results/fuzz.json]

The image reader gets mutated PNG, JPEG, GIF, TIFF, WebP and BMP files (bit flips, byte
runs, cuts, repeated chunks, huge declared sizes) and garbage, under random names and
declared types; the upload endpoints (/api/jobs, /api/compare, /api/fast) get multipart
bodies of such files and odd fields, some cut short or sent under the wrong content type.
Every case must end in a decoded picture or a 4xx (reader), or a 4xx JSON error, a queued
job or a painted picture (endpoints); a 5xx, an exception or a case slower than 5 s stops
the run with Hypothesis's smallest failing example. The decompression bombs and the
chunked over-size body are run once each. Prints the tally; writes it as JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "web"))
import test_web_fuzz as fuzz  # noqa: E402

SLOW = 5.0  # seconds: a case that takes longer counts as a hang


def timed(check, *args) -> str:
    """A check's outcome; a case slower than SLOW stops the run like a failed one (the test
    suite times nothing: on a shared machine a timing says more about the neighbours)."""
    started = time.perf_counter()
    outcome = check(*args)
    assert time.perf_counter() - started < SLOW, f"{check.__name__} took over {SLOW} s"
    return outcome


def run_reader(cases: int) -> collections.Counter:
    tally: collections.Counter = collections.Counter()

    @settings(max_examples=cases, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=fuzz.mutated(), name=fuzz.text, content_type=st.sampled_from(fuzz.CONTENT_TYPES))
    def reader(data: bytes, name: str, content_type: str) -> None:
        tally[timed(fuzz.check_reader, data, name, content_type)] += 1

    reader()
    return tally


def run_upload(cases: int, folder: Path) -> collections.Counter:
    tally: collections.Counter = collections.Counter()
    client = fuzz.new_client(folder)

    @settings(max_examples=cases, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(request=fuzz.multipart())
    def upload(request: tuple[str, bytes, str]) -> None:
        tally[f"{request[0]} {timed(fuzz.check_upload, client, *request)}"] += 1

    upload()
    return tally


def run_fixed(folder: Path) -> collections.Counter:
    """The bombs and the chunked body, once each, as the CI test runs them."""
    tally: collections.Counter = collections.Counter()
    fuzz.seeds_decode()
    for kind, make in fuzz.BOMBS.items():
        outcome = timed(fuzz.check_reader, make())
        assert outcome == "413", (kind, outcome)
        tally[f"bomb {kind}: {outcome}"] += 1
    return tally


def table(name: str, tally: collections.Counter, seconds: float) -> None:
    total = sum(tally.values())
    print(f"\n{name}: {total} cases in {seconds:.0f} s")
    for outcome, count in sorted(tally.items()):
        print(f"  {outcome:<28} {count:>7}  {100 * count / total:5.1f} %")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reader", type=int, default=20000, help="image reader cases (default 20000)")
    parser.add_argument("--upload", type=int, default=5000, help="upload endpoint cases (default 5000)")
    parser.add_argument("--json", default="benchmarks/results/fuzz.json", help="where to write the tally")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # Pillow warns about every corrupt file; here that is the point
    results = {"machine": platform.processor() or platform.machine(), "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as folder:
        for name, run in (("fixed", lambda: run_fixed(Path(folder))), ("reader", lambda: run_reader(args.reader)),
                          ("upload", lambda: run_upload(args.upload, Path(folder) / "upload"))):
            started = time.perf_counter()
            tally = run()
            seconds = time.perf_counter() - started
            table(name, tally, seconds)
            results[name] = {"cases": sum(tally.values()), "seconds": round(seconds, 1), "outcomes": dict(tally)}
    print("\nno 5xx, no exception, no case over 5 s")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
