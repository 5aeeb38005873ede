"""f2l.distributed: one process without torchrun's variables (rank 0 of 1, nothing joined); under them,
each process joins the group and learns its rank and the world size from it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch.distributed as dist
from support import REPO

from f2l.distributed import barrier, init_distributed, rank, world_size

TORCHRUN_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.mark.parametrize("world", [None, "1"])
def test_a_single_process_is_rank_0_of_1_and_joins_nothing(monkeypatch, world):
    for var in TORCHRUN_VARS:
        monkeypatch.delenv(var, raising=False)
    if world is not None:  # torchrun --nproc-per-node 1 sets WORLD_SIZE=1: still no group to join
        monkeypatch.setenv("WORLD_SIZE", world)
    init_distributed()  # would fail to rendezvous (no MASTER_ADDR) if it tried to join
    assert not dist.is_initialized()
    assert (world_size(), rank()) == (1, 0)
    barrier()  # a no-op, not an error


# Each process reports what f2l.distributed tells it, before and after joining. Rank 1 writes a file late,
# before the barrier; rank 0 looks for it after the barrier: it is there only if the barrier waited.
RANK_PROGRAM = """
import json, sys, time
from pathlib import Path
import torch.distributed as dist
from f2l.distributed import barrier, init_distributed, rank, world_size
before = [world_size(), rank()]
init_distributed()
init_distributed()  # a second call leaves the joined group alone
marker = Path(sys.argv[1])
if rank() == 1:
    time.sleep(1.0)
    marker.write_text("rank 1 was here")
barrier()
after = [world_size(), rank()]
print(json.dumps({"before": before, "after": after, "backend": dist.get_backend(), "saw": marker.exists()}))
dist.destroy_process_group()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_variables_give_each_process_its_rank_and_the_world_size(tmp_path):
    port = _free_port()
    root = REPO
    procs = []
    for r in range(2):
        env = {
            **os.environ,
            "WORLD_SIZE": "2",
            "RANK": str(r),
            "LOCAL_RANK": str(r),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "CUDA_VISIBLE_DEVICES": "",  # gloo on any machine: two ranks need not find two GPUs
            "OMP_NUM_THREADS": "1",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", RANK_PROGRAM, str(tmp_path / "marker")],
                env=env,
                cwd=root,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    reports = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["before"] for r in reports] == [[1, 0], [1, 0]]  # nothing joined until init_distributed
    assert [r["after"] for r in reports] == [[2, 0], [2, 1]]
    assert {r["backend"] for r in reports} == {"gloo"}
    assert [r["saw"] for r in reports] == [True, True]  # the barrier held rank 0 until rank 1 wrote
