"""Engine pieces on their own: scalar tracking, checkpoint files, signals, mode metrics, data stream."""

from __future__ import annotations

import errno
import math
import os
import signal
import subprocess
import sys

import pytest
import torch

from genrun.data.bundle import Batches, DataBundle
from genrun.engine.checkpoint import CheckpointDir, atomic_save, load_checkpoint
from genrun.engine.signals import StopSignals
from genrun.engine.tracker import NonFiniteLoss, ScalarTracker
from genrun.errors import GenrunError
from genrun.metrics.modes import mode_metrics


def test_tracker_means_with_keys_that_come_and_go():
    t = ScalarTracker()
    t.add(1, {"a": torch.tensor(1.0), "b": torch.tensor(10.0)})
    t.add(2, {"a": torch.tensor(3.0)})
    t.add(3, {"a": torch.tensor(5.0), "b": torch.tensor(20.0)})
    assert t.flush() == {"a": 3.0, "b": 15.0}
    assert t.flush() == {}


def test_tracker_names_the_first_non_finite_key_and_step():
    t = ScalarTracker()
    t.add(7, {"loss/d": torch.tensor(1.0), "loss/g": torch.tensor(1.0)})
    t.add(8, {"loss/d": torch.tensor(1.0), "loss/g": torch.tensor(math.inf)})
    t.add(9, {"loss/d": torch.tensor(math.nan), "loss/g": torch.tensor(math.nan)})
    with pytest.raises(NonFiniteLoss, match="loss/g became NaN or infinite at step 8"):
        t.check()
    with pytest.raises(NonFiniteLoss):
        t.flush()


def test_atomic_save_never_leaves_a_torn_file(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    atomic_save({"format": "genrun-checkpoint", "version": 1, "x": torch.ones(3)}, path)

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(GenrunError, match=f"cannot write checkpoint {path}: disk full"):
        atomic_save({"x": torch.zeros(3)}, path)
    assert torch.equal(load_checkpoint(path)["x"], torch.ones(3))
    assert os.listdir(tmp_path) == ["c.pt"]


class FillsUp:
    """A file on a disk with `room` bytes left: later writes fail with ENOSPC, as on a full disk."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import genrun.engine.checkpoint as checkpoint_module

    ckpts = CheckpointDir(tmp_path, keep_last=1)
    ckpts.save({"step": 1, "w": torch.ones(4)}, 1)
    # torch.save itself turns the failed write into RuntimeError('... unexpected pos ...'): the
    # message must name the real cause and the file, and last.pt must still be step 1's
    monkeypatch.setattr(checkpoint_module, "open", lambda path, mode: FillsUp(open(path, mode), 100),  # noqa: SIM115
                        raising=False)
    with pytest.raises(GenrunError, match=f"cannot write checkpoint {tmp_path / 'step_2.pt'}: No space left"):
        ckpts.save({"step": 2, "w": torch.zeros(100_000)}, 2)
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 1
    assert sorted(os.listdir(tmp_path)) == ["last.pt", "step_1.pt"]  # no temp file left behind


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f".step_7.pt.tmp{dead_pid}").write_bytes(b"torn")
    (tmp_path / f".last.pt.tmp{dead_pid}").write_bytes(b"torn")
    alive = tmp_path / f".step_8.pt.tmp{os.getppid()}"  # a live process may still be writing it
    alive.write_bytes(b"in progress")
    CheckpointDir(tmp_path, keep_last=2)
    assert os.listdir(tmp_path) == [alive.name]


def test_checkpoint_dir_keeps_the_newest_and_last_matches(tmp_path):
    ckpts = CheckpointDir(tmp_path, keep_last=2)
    for step in (5, 10, 15):
        ckpts.save({"step": step, "w": torch.full((2,), float(step))}, step)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "step_10.pt", "step_15.pt"]
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 15
    only_last = CheckpointDir(tmp_path / "k0", keep_last=0)
    only_last.save({"step": 1}, 1)
    assert [p.name for p in (tmp_path / "k0").iterdir()] == ["last.pt"]


def test_foreign_files_are_not_checkpoints(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(GenrunError, match="not a readable genrun checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"format": "genrun-checkpoint", "version": 99}, tmp_path / "new.pt")
    with pytest.raises(GenrunError, match="version 99"):
        load_checkpoint(tmp_path / "new.pt")


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 0), (signal.SIGUSR1, 0), (signal.SIGUSR2, 0), (signal.SIGINT, 130)])
def test_stop_signals_set_a_flag_and_restore_handlers(sig, code):
    before = signal.getsignal(sig)
    with StopSignals() as stop:
        os.kill(os.getpid(), sig)
        assert stop.received == sig and not stop.requested  # the loop acts on it once the ranks agree
        stop.agree(stop.received)
        assert stop.requested and stop.exit_code == code
    assert signal.getsignal(sig) == before


def test_mode_metrics_on_perfect_collapsed_and_bad_samples():
    modes = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    perfect = modes.repeat(250, 1) + 0.001
    assert mode_metrics(perfect, modes, 0.05) == {"modes": 4, "hq": 100.0, "kl_to_uniform": pytest.approx(0.0, abs=1e-12)}
    collapsed = torch.cat([modes[:1].repeat(500, 1), torch.full((500, 2), 1.0)])
    m = mode_metrics(collapsed, modes, 0.05)
    assert m["modes"] == 1 and m["hq"] == 50.0 and m["kl_to_uniform"] == pytest.approx(math.log(4))
    assert mode_metrics(torch.full((10, 2), math.nan), modes, 0.05) == {"modes": 0, "hq": 0.0, "kl_to_uniform": None}


def test_batches_resume_at_the_same_position_across_epochs():
    data = DataBundle(train=torch.arange(10.0)[:, None], labels=torch.arange(10))
    stream = Batches(data, batch_size=3, device=torch.device("cpu"), seed=1)
    seen = [stream()["y"] for _ in range(4)]  # 3 batches per epoch: crosses into epoch 1
    assert sorted(torch.cat(seen[:3]).tolist()) == sorted(set(torch.cat(seen[:3]).tolist()))
    resumed = Batches(data, batch_size=3, device=torch.device("cpu"), seed=1)
    resumed.load_state_dict(stream.state_dict())
    assert torch.equal(resumed()["y"], stream()["y"])
    with pytest.raises(GenrunError, match="batch_size=11 is larger than the dataset"):
        Batches(data, batch_size=11, device=torch.device("cpu"), seed=1)
