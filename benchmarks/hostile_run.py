"""One `newsflow run`, exactly as a user runs it, over a loopback site where a dozen and more
feeds are hostile beside healthy ones (tests/faults/web.py, slow cases included: a trickling
feed, a silent one, a page too big to extract). Default settings and Prefect's temporary server.

Reports wall time and the peak memory of the whole process tree (newsflow, its workers, the
Prefect server), checks what landed in the database, then runs again without
NEWSFLOW_ALLOW_PRIVATE_NETWORKS and checks that not one request reached the site.

    .venv/bin/python benchmarks/hostile_run.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults.harness import FaultRun, MemoryWatch, feeds_toml, last_run  # noqa: E402
from tests.faults.web import HostileWeb, hostile_web  # noqa: E402
from tests.loopback import LoopbackServer  # noqa: E402

NEWSFLOW = str(Path(sys.executable).with_name("newsflow"))


def newsflow_run(feeds: Path, db: Path, *, allow_private: bool) -> tuple[FaultRun, int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "NEWSFLOW_"))}
    if allow_private:
        env["NEWSFLOW_ALLOW_PRIVATE_NETWORKS"] = "1"
    argv = [NEWSFLOW, "run", "--feeds", str(feeds), "--db", str(db)]
    started = time.monotonic()
    child = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with MemoryWatch(child.pid) as watch:
        out, err = child.communicate(timeout=900)
    return last_run(db, time.monotonic() - started, watch), child.returncode, out + err


def check(web: HostileWeb, run: FaultRun) -> list[str]:
    problems = []
    for feed in web.healthy:
        try:
            run.assert_loaded_in_full(feed)
        except AssertionError as exc:
            problems.append(f"healthy {feed.url}: {exc}")
    for url, (kinds, status) in web.hostile.items():
        found, state = set(run.kinds(url)), run.feed(url)["status"]
        verdict = "ok" if (found, state) == (kinds, status) else "UNEXPECTED"
        print(f"  {verdict:10} {url.rsplit('/', 2)[-2:]} {sorted(found)} {state}")
        if verdict != "ok":
            problems.append(f"{url}: {sorted(found)} {state}, expected {sorted(kinds)} {status}")
    return problems


def main() -> int:
    with LoopbackServer() as server, tempfile.TemporaryDirectory(prefix="newsflow-hostile-") as tmp:
        web = hostile_web(server, slow=True)
        feeds = Path(tmp) / "feeds.toml"
        feeds.write_text(feeds_toml([*web.hostile, *(f.url for f in web.healthy)]), "utf-8")
        print(f"{len(web.hostile)} hostile and {len(web.healthy)} healthy feeds on {server.url()}")
        run, code, printed = newsflow_run(feeds, Path(tmp) / "allowed.duckdb", allow_private=True)
        print(printed.rstrip())
        print(f"exit {code} · {run.seconds:.1f} s · PSS {run.peak_memory / 2**20:.0f} MiB")
        problems = check(web, run)
        if code != 0 or "Traceback" in printed:
            problems.append(f"exit {code}, traceback: {'Traceback' in printed}")
        hits = len(server.hits)
        refused, code, printed = newsflow_run(
            feeds, Path(tmp) / "default.duckdb", allow_private=False
        )
        blocked = sum(refused.kinds(u) == ["blocked_address"] for u in web.hostile)
        print(
            f"without NEWSFLOW_ALLOW_PRIVATE_NETWORKS: exit {code}, {len(server.hits) - hits} "
            f"requests reached the site, {blocked}/{len(web.hostile)} hostile feeds blocked_address"
        )
        if code != 0 or len(server.hits) != hits:
            problems.append("loopback was reached without NEWSFLOW_ALLOW_PRIVATE_NETWORKS")
    for problem in problems:
        print("PROBLEM:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
