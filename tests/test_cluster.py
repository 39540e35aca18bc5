"""labkit.cluster: joining or starting a Dask cluster, and mapping tasks over it (real clusters)."""

import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from labkit import cluster
from labkit.errors import DataError, LabkitError, ParameterError


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "address, says",
    [
        (f"tcp://127.0.0.1:{_free_port()}", "unreachable"),
        ("tcp://no-such-host.invalid:8786", "unreachable"),
        ("tcp://127.0.0.1:notaport", "malformed"),
        ("tcp://:8786", "malformed"),
    ],
    ids=["free-port", "no-such-host", "not-a-port", "no-host"],  # stable ids: pytest-xdist needs them
)
def test_an_unreachable_scheduler_is_one_quick_error_naming_it(address, says):
    t0 = time.perf_counter()
    with pytest.raises(ParameterError, match=says) as err:
        with cluster.connect(address):
            pytest.fail("connected to a scheduler that is not there")
    assert address in str(err.value)
    assert time.perf_counter() - t0 < 8


def test_the_environment_names_the_scheduler(monkeypatch):
    address = f"tcp://127.0.0.1:{_free_port()}"
    monkeypatch.setenv(cluster.SCHEDULER_ENV, address)
    assert cluster.scheduler_address() == address
    assert cluster.scheduler_address("tcp://other:1") == "tcp://other:1"
    with pytest.raises(ParameterError, match=address.replace(".", r"\.")):
        with cluster.connect():
            pass
    # map_tasks joins only an explicit scheduler, and says which one failed
    with pytest.raises(ParameterError, match="unreachable"):
        cluster.map_tasks(str, [1], "joined")


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True])
def test_jobs_must_be_a_positive_integer(jobs):
    with pytest.raises(ParameterError, match="jobs"):
        with cluster.connect(jobs=jobs):
            pass


def _square(x):
    if x == 3:
        raise ValueError(f"no square for {x}")
    if x == 4:
        raise DataError("row 4 of pairs.csv: bad label")
    return os.getpid(), x * x


def test_map_tasks_in_process_keeps_order_and_names_the_failing_item(monkeypatch):
    monkeypatch.delenv(cluster.SCHEDULER_ENV, raising=False)
    out = cluster.map_tasks(_square, [2, 0, 1], "squares")
    assert [v for _, v in out] == [4, 0, 1] and {pid for pid, _ in out} == {os.getpid()}
    with pytest.raises(LabkitError, match=r"squares: the task for 3 failed: ValueError: no square"):
        cluster.map_tasks(_square, [1, 3], "squares")


def test_two_worker_local_cluster_runs_tasks_in_their_processes_and_reports_failures(monkeypatch):
    monkeypatch.delenv(cluster.SCHEDULER_ENV, raising=False)
    with cluster.connect(jobs=2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        assert all(w["nthreads"] == 1 for w in client.scheduler_info()["workers"].values())
        out = cluster.map_tasks(_square, [5, 0, 2, 1, 6], "squares", client=client)
        assert [v for _, v in out] == [25, 0, 4, 1, 36]
        assert os.getpid() not in {pid for pid, _ in out}
        with pytest.raises(LabkitError, match=r"the task for 3 failed: ValueError: no square for 3"):
            cluster.map_tasks(_square, [0, 3, 1], "squares", client=client)
        with pytest.raises(DataError, match=r"the task for 4 failed: DataError: row 4 of pairs"):
            cluster.map_tasks(_square, [4], "squares", client=client)
        # a named scheduler (here: this cluster's) is joined through the environment
        monkeypatch.setenv(cluster.SCHEDULER_ENV, client.scheduler.address)
        assert [v for _, v in cluster.map_tasks(_square, [7], "joined")] == [49]


def test_workers_keep_the_callers_thread_settings(monkeypatch):
    """distributed pins OMP/MKL/OpenBLAS threads to 1 in workers, and a forkserver started
    earlier holds an older environment; workers (and so kernels) must see ours as it is now."""
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setenv("LABKIT_PROBE", "before")
    with cluster.connect(jobs=1):
        pass  # the worker forkserver now holds this environment
    monkeypatch.setenv("LABKIT_PROBE_NEW", "set later")
    monkeypatch.delenv("LABKIT_PROBE")
    with cluster.connect(jobs=1) as client:
        env = client.submit(
            lambda: tuple(
                os.environ.get(k)
                for k in (
                    "OMP_NUM_THREADS",
                    "MKL_NUM_THREADS",
                    cluster.PARENT_ENV,
                    "LABKIT_PROBE",
                    "LABKIT_PROBE_NEW",
                )
            ),
            pure=False,
        ).result()
    assert env == ("2", None, str(os.getpid()), None, "set later")


def test_watch_parent_ends_a_process_and_its_children_when_the_parent_dies(tmp_path):
    """parent -> child (watches parent) -> grandchild; SIGKILL the parent: both others end."""
    pids = tmp_path / "pids"
    script = textwrap.dedent(f"""
        import os, subprocess, sys, time
        if sys.argv[1] == "parent":
            subprocess.Popen([sys.executable, __file__, "child"])
            time.sleep(60)
        elif sys.argv[1] == "child":
            from labkit.cluster import watch_parent
            watch_parent(interval_s=0.1)
            grand = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{grand.pid}}")
            time.sleep(60)
    """)
    path = tmp_path / "tree.py"
    path.write_text(script)
    parent = subprocess.Popen([sys.executable, str(path), "parent"])
    try:
        deadline = time.time() + 30
        while not (pids.is_file() and len(pids.read_text().split()) == 2) and time.time() < deadline:
            time.sleep(0.1)
        child, grand = map(int, pids.read_text().split())
        parent.kill()
        parent.wait()
        psutil = pytest.importorskip("psutil")
        _, alive = psutil.wait_procs([psutil.Process(p) for p in (child, grand) if psutil.pid_exists(p)], timeout=5)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive
    finally:
        parent.kill()
