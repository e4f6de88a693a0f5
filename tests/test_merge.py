"""FSDP merge: a real sharded checkpoint saved by 2 CPU processes (gloo) with verl's own FSDPCheckpointManager
(verl's on-disk layout), merged by scripts/merge_fsdp_checkpoint.py over verl's model merger, reproduces the
original weights; incomplete folders, foreign pickles and mismatches fail with exact messages."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import pickle
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fixtures_model import tiny_model_dir  # noqa: F401  (pytest fixture)

from sidreasoner.rl.merge import MergeError, compare_weights, find_shards, merge_all, merge_checkpoint, step_dirs

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "merge_fsdp_checkpoint.py"
WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _save_rank(rank: int, port: int, model_dir: str, actor_dir: str, fsdp_version: int, errors) -> None:
    """One rank: shard the model with FSDP on CPU (gloo) and save it with verl's checkpoint manager."""
    try:
        import torch.distributed as dist
        from omegaconf import OmegaConf
        from torch.distributed.device_mesh import init_device_mesh
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager
        torch.set_num_threads(1)
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                          LOCAL_RANK=str(rank))
        dist.init_process_group("gloo", rank=rank, world_size=WORLD)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        mesh = init_device_mesh("cpu", (WORLD,), mesh_dim_names=("fsdp",))  # verl shards over a named mesh
        if fsdp_version == 2:
            from torch.distributed.fsdp import fully_shard
            for layer in model.model.layers:
                fully_shard(layer, mesh=mesh)
            fully_shard(model, mesh=mesh)
        else:
            from torch.distributed.fsdp import FullyShardedDataParallel
            model = FullyShardedDataParallel(model, device_id=torch.device("cpu"), device_mesh=mesh)
        manager = FSDPCheckpointManager(model, processing_class=AutoTokenizer.from_pretrained(model_dir),
                                        checkpoint_config=OmegaConf.create({"save_contents": ["model"],
                                                                            "load_contents": ["model"]}))
        manager.save_checkpoint(actor_dir, global_step=1)
        dist.destroy_process_group()
    except BaseException as e:  # reported to the parent: a child's traceback is otherwise lost
        errors.put(f"rank {rank}: {type(e).__name__}: {e}")
        raise


def save_fsdp_checkpoint(model_dir: Path, actor_dir: Path, fsdp_version: int) -> None:
    ctx = mp.get_context("fork")  # the children reuse this process's imports (spawn re-imports verl: ~20 s)
    errors, port = ctx.Queue(), _free_port()
    procs = [ctx.Process(target=_save_rank, args=(r, port, str(model_dir), str(actor_dir), fsdp_version, errors))
             for r in range(WORLD)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert errors.empty(), errors.get()
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir):
    """A verl-style run folder: global_step_1/actor saved by 2 gloo processes with FSDP2."""
    run = tmp_path_factory.mktemp("verl_run")
    save_fsdp_checkpoint(tiny_model_dir[0], run / "global_step_1" / "actor", fsdp_version=2)
    return run


def _original(model_dir) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).state_dict()


def test_verl_layout_on_disk(run_dir):
    actor = run_dir / "global_step_1" / "actor"
    names = sorted(p.name for p in actor.iterdir())
    assert names == ["fsdp_config.json", "huggingface", "model_world_size_2_rank_0.pt", "model_world_size_2_rank_1.pt"]
    assert json.loads((actor / "fsdp_config.json").read_text()) == {"FSDP_version": 2, "world_size": 2}
    assert [p.name for p in find_shards(actor)] == names[2:]


def test_merge_reproduces_the_original_weights(run_dir, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    out = tmp_path / "merged"
    report = merge_checkpoint(run_dir / "global_step_1" / "actor", out, say=lambda *_: None)
    merged = AutoModelForCausalLM.from_pretrained(out).state_dict()
    original = _original(tiny_model_dir[0])
    assert sorted(merged) == sorted(original)
    # verl's merger writes bfloat16: every tensor is the original rounded to bfloat16, exactly
    assert all(torch.equal(merged[k], original[k].to(torch.bfloat16)) for k in original)
    assert (report["world_size"], report["tensors"], report["dtype"]) == (2, len(original), "torch.bfloat16")
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.get_vocab() == AutoTokenizer.from_pretrained(tiny_model_dir[0]).get_vocab()
    assert json.loads((out / "merge_report.json").read_text())["tensors"] == len(original)


def test_merge_of_fsdp1_shards(tiny_model_dir, tmp_path):
    """verl's default actor strategy (fsdp) saves FSDP1 sharded state dicts (DTensors over its mesh)."""
    actor = tmp_path / "global_step_3" / "actor"
    save_fsdp_checkpoint(tiny_model_dir[0], actor, fsdp_version=1)
    merge_all(tmp_path, say=lambda *_: None)
    from transformers import AutoModelForCausalLM
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "global_step_3" / "actor_merged").state_dict()
    original = _original(tiny_model_dir[0])
    assert all(torch.equal(merged[k], original[k].to(torch.bfloat16)) for k in original)


def test_bad_folders(run_dir, tmp_path):
    with pytest.raises(MergeError, match=r"nowhere: checkpoint folder not found$"):
        find_shards(tmp_path / "nowhere")
    with pytest.raises(MergeError, match=r": no FSDP model shards \(model_world_size_<N>_rank_<R>\.pt\); give a verl "
                                         r"actor folder such as <run dir>/global_step_100/actor$"):
        find_shards(tmp_path)
    actor = tmp_path / "copy"
    shutil.copytree(run_dir / "global_step_1" / "actor", actor)
    (actor / "model_world_size_2_rank_1.pt").unlink()
    with pytest.raises(MergeError, match=r"copy: world size 2 but the shards of rank\(s\) \[1\] are missing$"):
        find_shards(actor)
    shutil.copy(run_dir / "global_step_1" / "actor" / "model_world_size_2_rank_1.pt", actor)
    (actor / "fsdp_config.json").unlink()
    with pytest.raises(MergeError, match=r"fsdp_config\.json: not found \(verl writes it beside the shards"):
        find_shards(actor)
    with pytest.raises(MergeError, match=r": no global_step_\*/actor folders: nothing to merge"):
        step_dirs(tmp_path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_foreign_pickle_is_refused_before_verl_unpickles_it(run_dir, tmp_path):
    actor = tmp_path / "global_step_1" / "actor"
    shutil.copytree(run_dir / "global_step_1" / "actor", actor)
    torch.save({"x": os.getcwd}, actor / "model_world_size_2_rank_1.pt")  # a callable: what weights_only refuses
    with pytest.raises(MergeError, match=r"model_world_size_2_rank_1\.pt: cannot be read with "
                                         r"torch\.load\(weights_only=True\): UnpicklingError"):
        merge_checkpoint(actor, say=lambda *_: None)
    with open(actor / "model_world_size_2_rank_1.pt", "wb") as f:
        pickle.dump({"x": os.getcwd}, f)  # the same in the legacy (non-zip) format
    with pytest.raises(MergeError, match=r"model_world_size_2_rank_1\.pt: cannot be read with "
                                         r"torch\.load\(weights_only=True\): UnpicklingError"):
        merge_checkpoint(actor, say=lambda *_: None)
    assert not (actor.parent / "actor_merged").exists() and not (actor.parent / "actor_merged.partial").exists()


def test_compare_weights_names_the_difference():
    w = {"a": torch.ones(2, 2), "b": torch.zeros(3)}
    assert compare_weights({k: v.to(torch.bfloat16) for k, v in w.items()}, w)["parameters"] == 7
    with pytest.raises(MergeError, match=r"^merged tensor a differs from the shards \(max \|diff\| 0\.5\)$"):
        compare_weights({"a": torch.full((2, 2), 1.5), "b": torch.zeros(3)}, w)
    with pytest.raises(MergeError, match=r"^merged model lacks 1 tensors of the shards, e\.g\. \['b'\]$"):
        compare_weights({"a": torch.ones(2, 2)}, w)
    with pytest.raises(MergeError, match=r"^merged model has 1 tensors that are not in the shards, e\.g\. \['c'\]$"):
        compare_weights({**w, "c": torch.ones(1)}, w)


def test_script_all_and_bad_input(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    help_ = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True)
    assert help_.returncode == 0 and "--all RUN_DIR" in help_.stdout and "--info_file" in help_.stdout
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--all", str(run)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "25 tensors" in done.stdout and (run / "global_step_1" / "actor_merged" / "config.json").is_file()
    said = []
    merge_all(run, say=said.append)  # a second pass keeps what is merged
    assert said == [f"global_step_1: already merged ({run / 'global_step_1' / 'actor_merged'})"]
    bad = subprocess.run([sys.executable, str(SCRIPT), "--all", str(run), "--output_dir", "x"], capture_output=True,
                         text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.strip() == ("merge_fsdp_checkpoint.py: error: --output_dir applies to "
                                                          "--checkpoint only (--all writes each step's actor_merged)")
