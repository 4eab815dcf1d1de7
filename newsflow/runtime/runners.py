"""Task runners of an ingest run: threads of the flow process, or a Dask cluster.

`local` runs the per-feed tasks in threads of the flow process and extracts in its process
pool. `dask` sends them to dask.distributed workers: those of a running scheduler
(`--dask-address`), or of a LocalCluster started for the run with one single-threaded worker
process per core — the shape CPU-bound extraction wants, each worker extracting in-process
(tasks/extraction/extract.py, InlineExtractor). Either way the batches come back to the flow
process, which alone writes them.

Dask workers open no database and no stage folder: what their entry lookups need (the known
articles, tasks/storage/stage.py's snapshot tables) is published to the cluster by the flow process
at the start of the run. Workers may thus be on any machine; and none waits for the database
lock while the flow process writes, which would leave its core idle.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from newsflow.schemas.config import ScaleOptions
from newsflow.schemas.errors import ConfigError

# How long to wait for a scheduler at --dask-address before calling it unreachable.
CONNECT_TIMEOUT = "15s"
# On Dask, a task carries several feeds: submitting one costs the flow process tens of ms
# (prefect-dask serializes Prefect's whole settings context for each), and running one costs
# the worker its state reports. About this many tasks per worker thread keep the work evenly
# spread to the end of the run; a task carries at most so many feeds.
TASKS_PER_THREAD = 4
MAX_FEEDS_PER_TASK = 50


def local_cluster_kwargs(workers: int) -> dict[str, Any]:
    """A LocalCluster of `workers` processes with one thread each, and no dashboard (its port
    would clash between runs, and a one-shot run has no one to look at it)."""
    return {
        "n_workers": max(1, workers),
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,
    }


def task_runner(scale: ScaleOptions, workers: int) -> TaskRunner[Any]:
    if scale.runner == "local":
        # Per-feed tasks mostly wait on the network and the extraction pool: more threads
        # than cores.
        return ThreadPoolTaskRunner(max_workers=8)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:
        raise ConfigError(
            "--runner dask needs prefect-dask: pip install 'newsflow[scale]'"
        ) from exc
    if scale.dask_address:
        return DaskTaskRunner(
            address=scale.dask_address, client_kwargs={"timeout": CONNECT_TIMEOUT}
        )
    return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(workers))


def check_scheduler(address: str) -> None:
    """Connect to the scheduler once, so that a wrong address is a one-line error before any
    flow starts."""
    from distributed import Client

    try:
        with Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False):
            pass
    except OSError as exc:  # distributed's connect timeouts are OSErrors
        raise ConfigError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc


@contextmanager
def started_runner(scale: ScaleOptions, workers: int) -> Iterator[TaskRunner[Any]]:
    """The run's task runner, started; a Dask scheduler that cannot be reached is a one-line
    error here rather than a traceback at the first task."""
    with task_runner(scale, workers) as runner:
        if scale.runner == "dask":
            try:
                # The client connects to the scheduler, or starts the LocalCluster.
                _ = runner.client  # type: ignore[attr-defined]
            except OSError as exc:  # distributed's connect timeouts are OSErrors
                raise ConfigError(
                    f"cannot reach the Dask scheduler at {scale.dask_address}: {exc}"
                ) from exc
        yield runner


def feeds_per_task(runner: TaskRunner[Any], scale: ScaleOptions, feeds: int) -> int:
    """One feed a task on threads, which overlap the waits of many; on Dask, enough to share
    a task's cost among several feeds (see TASKS_PER_THREAD)."""
    if scale.runner == "local":
        return 1
    threads = sum(runner.client.nthreads().values())  # type: ignore[attr-defined]
    return chunk_size(feeds, threads)


def chunk_size(feeds: int, threads: int) -> int:
    wanted = TASKS_PER_THREAD * max(1, threads)
    return max(1, min(MAX_FEEDS_PER_TASK, math.ceil(feeds / wanted)))


@contextmanager
def published(runner: TaskRunner[Any], name: str, tables: dict[str, pa.Table]) -> Iterator[None]:
    """The tables, copied to every worker of the runner's cluster and named, for the block."""
    client = runner.client  # type: ignore[attr-defined]
    [future] = client.scatter([tables], broadcast=True)
    client.publish_dataset(future, name=name)
    try:
        yield
    finally:
        client.unpublish_dataset(name)
