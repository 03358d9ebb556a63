"""A GPU node's asymmetries, modelled on this CPU: per-rank engines, uneven skips, sharded start-up, streamed sync.

Two gloo processes under torchrun, vLLM's CPU build with its external launcher (one engine per rank, as on a
node), the RL stage's own loading, trainer and sync. What a GPU adds (CUDA devices, NCCL, sleep mode) is in the
README's GPU section; the device assertion and the engine arguments are tested here as far as a CPU allows.
"""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import shared_project, torchrun

vllm_engine = pytest.importorskip("videor1.generation.vllm_engine")


@pytest.fixture(scope="module")
def node_run(tiny_model_dir, synth_data, tmp_path_factory):
    def build(work):
        torchrun(2, "rl_node.py", str(tiny_model_dir), str(synth_data), str(work), str(work / "out.pt"))

    return torch.load(shared_project(tmp_path_factory, "node_run", build) / "out.pt", weights_only=False)


@pytest.mark.slow
def test_each_rank_builds_its_own_colocated_engine(node_run):
    """vLLM's external launcher on every rank: each engine is one data-parallel replica of tensor parallel 1 in
    the trainer's 2-process group (not two single-process engines that would both claim local rank 0's GPU)."""
    assert node_run["world"] == 2
    for rank in node_run["ranks"]:
        assert rank["engine_executor"] == "external_launcher"
        assert (rank["vllm_world"], rank["vllm_tp"]) == (2, 1)


@pytest.mark.slow
def test_ranks_that_skip_unevenly_finish_every_step(node_run):
    """An unreadable video on rank 0 and over-long prompts: the ranks keep different numbers of groups (one rank
    none in a step), every step still trains on what survived, and every skipped row is logged with its reason."""
    kept = [rank["kept_per_step"] for rank in node_run["ranks"]]
    assert [r["step"] for r in node_run["records"]] == [1, 2, 3]
    assert any(a != b for a, b in zip(*kept)) and 0 in kept[0] + kept[1]
    assert [r["groups"] for r in node_run["records"]] == [a + b for a, b in zip(*kept)]
    reasons = [s["reason"] for s in node_run["skipped"]]
    assert any(r.endswith("missing/clip.mp4: file does not exist") for r in reasons)
    assert any(r.startswith("prompt too long:") and r.endswith("> 320") for r in reasons)
    assert len(reasons) == sum(2 * 2 - a - b for a, b in zip(*kept))  # nothing lost, nothing replaced


@pytest.mark.slow
def test_the_streamed_sync_holds_a_bucket_and_vllm_samples_the_trained_policy(node_run):
    """Full tensors alive at once during a sync, counted on the tensors handed out: streamed, one tensor (bucket
    0) into a transformers copy, and vLLM's in-place reload keeps a layer of them; a full gather holds them all.
    After training and after the streamed sync, vLLM's log-probs of its own samples are the policy's."""
    for rank in node_run["ranks"]:
        assert rank["gather_peak_full"] == rank["sync_peak_full_gather"] == rank["weights_bytes"]
        assert rank["gather_peak_streamed"] <= rank["largest_tensor_bytes"] + 1024  # measured: 301,312 of 2,645,760
        assert rank["sync_peak_streamed"] < 0.3 * rank["sync_peak_full_gather"]  # measured: 0.21
        assert rank["logprob_gap_after_training"] < 2e-4 and rank["logprob_gap_after_streamed_sync"] < 2e-4


@pytest.fixture(scope="module")
def medium_model_dir(tiny_model_dir, tmp_path_factory):
    """A 64M-parameter Qwen2.5-VL (16 layers of 512), saved in bf16 as the published checkpoints are: big enough
    that a model copy stands out of the process's own resident memory."""
    from videor1.models import TinyModelConfig, build_tiny_model, load_processor, save_model_dir

    processor = load_processor(tiny_model_dir)
    model = build_tiny_model(
        TinyModelConfig(
            hidden_size=512,
            intermediate_size=2048,
            num_hidden_layers=16,
            mrope_section=[16, 24, 24],
            tie_word_embeddings=False,
        ),
        processor.tokenizer,
    )
    target = tmp_path_factory.mktemp("models") / "medium"
    save_model_dir(model.to(torch.bfloat16), processor, target)
    return target


@pytest.mark.slow
def test_start_up_holds_no_full_fp32_replica_on_any_rank(medium_model_dir, tmp_path):
    """Policy (fp32) and reference (bf16) sharded as they load: each rank's peak resident memory during start-up
    stays below one full fp32 replica plus its shard, and a rank other than 0 holds less than one replica (rank 0
    alone reads the checkpoint). Before, every rank peaked above two replicas (bench/results/node.md)."""
    torchrun(2, "startup_memory.py", str(medium_model_dir), str(tmp_path / "memory.json"), "sharded")
    measured = json.loads((tmp_path / "memory.json").read_text())
    full = measured["full_fp32_bytes"]
    assert full > 200e6
    for rank in measured["ranks"]:
        assert rank["extra_peak_bytes"] < full + rank["shard_fp32_bytes"], rank
        if rank["rank"] > 0:
            assert rank["extra_peak_bytes"] < full, rank


def test_engine_arguments_per_launch_and_refusals_before_any_engine(monkeypatch, tiny_model_dir, family_model_dirs):
    """Under torchrun a colocated engine gets vLLM's external launcher; alone it does not. Tensor parallel > 1
    per rank, sleep mode on the CPU build and Qwen3.5 in anything but bf16 on it are refused in one line before an
    engine starts; Qwen3.5's chunked prefill gets a step budget that holds every running sequence's whole context."""
    args = dict(
        tensor_parallel_size=1,
        max_model_len=2048,
        gpu_memory_utilization=0.3,
        dtype="float32",
        seed=0,
        enforce_eager=None,
        max_num_seqs=16,
        sleep_mode=False,
    )
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    m = str(tiny_model_dir)
    assert "distributed_executor_backend" not in vllm_engine.engine_args(m, colocated=True, **args)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert vllm_engine.engine_args(m, colocated=True, **args)["distributed_executor_backend"] == "external_launcher"
    assert "distributed_executor_backend" not in vllm_engine.engine_args(m, colocated=False, **args)
    with pytest.raises(ValueError, match="tensor parallel 1"):
        vllm_engine.engine_args(m, colocated=True, **{**args, "tensor_parallel_size": 2})
    with pytest.raises(ValueError, match="no sleep mode"):
        vllm_engine.engine_args(m, colocated=True, **{**args, "sleep_mode": True})
    plain = vllm_engine.engine_args(m, colocated=False, **args)
    assert not plain["enable_chunked_prefill"] and plain["max_num_seqs"] == 16
    qwen3_5 = str(family_model_dirs["qwen3_5"])
    with pytest.raises(ValueError, match="runs Qwen3.5 in bfloat16 only"):
        vllm_engine.engine_args(qwen3_5, colocated=False, **args)
    for seqs, kept in ((16, 16), (64, 32)):  # 65,536 tokens a step hold 32 whole 2,048-token contexts
        chunked = vllm_engine.engine_args(
            qwen3_5, colocated=False, **{**args, "dtype": "bfloat16", "max_num_seqs": seqs}
        )
        assert chunked["enable_chunked_prefill"] and chunked["max_num_seqs"] == kept
        assert chunked["max_num_batched_tokens"] == kept * 2048
