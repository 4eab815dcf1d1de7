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
# A task carries several feeds once there are many: each task run costs the flow process
# ~4 ms of CPU and Prefect's server ~30 ms (its state events, recorded by a full server after
# the run, which made the next run's first API call wait seconds), and on Dask submitting one
# costs tens of ms more (prefect-dask serializes Prefect's whole settings context for each).
# About this many tasks per thread keep the work evenly spread to the end of the run; a task
# carries at most so many feeds.
TASKS_PER_THREAD = 4
MAX_FEEDS_PER_TASK = 50
# Threads of the local runner: tasks mostly wait on the network and the extraction pool.
LOCAL_THREADS = 8


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
        return ThreadPoolTaskRunner(max_workers=LOCAL_THREADS)
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
    """Enough feeds a task to share a task's cost among several when there are many, few
    enough that the threads stay busy to the end of the run (see TASKS_PER_THREAD): one feed
    a task up to 32 feeds on the local runner, 13 for 400."""
    if scale.runner == "local":
        return chunk_size(feeds, LOCAL_THREADS)
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
