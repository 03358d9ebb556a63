"""The collect core: schema rejections with reasons, path traversal, hostile media, balancing, the probe cache."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from videor1.data.balance import SourceRule
from videor1.data.collect import CollectConfig, MediaRules, RowSource, collect
from videor1.data.synth import BROKEN_CASES, write_broken

TINY_MEDIA = MediaRules(
    max_frames=8, video_min_pixels=3136, video_max_pixels=3136, image_min_pixels=3136, image_max_pixels=7056
)


def good_row(pid: int, path: str = "./clip.mp4", **over) -> dict:
    row = {
        "problem_id": pid,
        "problem": "Which way does it move?",
        "data_type": "video",
        "problem_type": "multiple choice",
        "options": ["A. left", "B. right"],
        "solution": "<answer>B</answer>",
        "path": path,
        "data_source": "src/a",
    }
    row.update(over)
    return row


@pytest.fixture
def root(tmp_path, videos):
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(videos["short_gop"], media / "clip.mp4")
    for name in ("zero_byte", "truncated_moov_lost", "not_a_video", "one_frame", "wide_300_1", "truncated_frames_lost"):
        shutil.copy(videos[name], media / f"{name}.mp4")
    (tmp_path / "outside.mp4").write_bytes((media / "clip.mp4").read_bytes())
    os.symlink(tmp_path / "outside.mp4", media / "link_out.mp4")
    return media


def run(tmp_path, root, rows, **kw):
    rows_file = tmp_path / "rows.json"
    rows_file.write_text(json.dumps(rows))
    cfg = CollectConfig(
        inputs=[RowSource(str(rows_file), str(root))],
        media=TINY_MEDIA,
        probe_cache=str(tmp_path / "probe.parquet"),
        **kw,
    )
    return collect(cfg)


def reasons_by_id(result) -> dict:
    return {
        q["row"]["problem_id"] if isinstance(q["row"], dict) and "problem_id" in q["row"] else q["index"]: q["reason"]
        for q in result.quarantine
    }


BAD_ROWS = [
    (good_row(10, data_type="audio"), "data_type must be one of"),
    (good_row(11, problem_type="essay"), "problem_type must be one of"),
    (good_row(12, solution="B"), "solution must be wrapped in <answer></answer>"),
    (good_row(13, options=[]), "options must be present exactly for multiple choice"),
    (good_row(14, problem_type="numerical", solution="<answer>3</answer>"), "options must be present exactly"),
    (good_row(15, options=["left", "right"]), "options must read 'A. ...'"),
    (good_row(16, options=["B. left", "A. right"]), "options must read 'A. ...'"),
    (good_row(17, solution="<answer>C</answer>"), "solution must be one of the option letters"),
    (good_row(18, path="clip.mp4"), "path must be relative and start with './'"),
    (good_row(19, path="/etc/passwd"), "path must be relative"),
    (good_row(20, path="./../outside.mp4"), "path must not contain '..'"),
    (good_row(21, path="./a/../../outside.mp4"), "path must not contain '..'"),
    (good_row(22, problem=""), "must not be empty"),
    (good_row(23, problem_id="23"), "field 'problem_id' must be int, got str"),
    (good_row(24, options="A. left"), "field 'options' must be list"),
    ({k: v for k, v in good_row(25).items() if k != "solution"}, "missing field 'solution'"),
    (good_row(26, problem_id=True), "field 'problem_id' must be int, got bool"),
    (good_row(27, options=["A. x", 3]), "list of strings"),
    (good_row(28, data_source=""), "must not be empty"),
    (good_row(29, problem_type="numerical", options=[], solution="<answer>three</answer>"), "must be a number"),
    (good_row(30, problem_type="regression", options=[], solution="<answer>1/2</answer>"), "must be a number"),
]


def test_schema_rejects_each_kind_of_bad_row_with_its_reason(tmp_path, root):
    rows = [good_row(1)] + [r for r, _ in BAD_ROWS] + ["not an object"]
    result = run(tmp_path, root, rows)
    assert result.table["problem_id"].to_list() == [1]
    got = reasons_by_id(result)
    for row, reason in BAD_ROWS:
        pid = (
            row.get("problem_id")
            if isinstance(row.get("problem_id"), int) and not isinstance(row["problem_id"], bool)
            else None
        )
        match = [q for q in result.quarantine if q["row"] == row]
        assert len(match) == 1, row
        assert reason in match[0]["reason"], (reason, match[0]["reason"])
        assert pid is None or pid in got
    assert any("must be a JSON object" in q["reason"] for q in result.quarantine)
    assert len(result.quarantine) == len(BAD_ROWS) + 1  # nothing lost: every row is kept or quarantined
    assert result.metrics["quarantined"] == len(result.quarantine)


def test_symlink_escaping_the_root_is_refused(tmp_path, root):
    result = run(tmp_path, root, [good_row(1), good_row(2, path="./link_out.mp4")])
    assert result.table["problem_id"].to_list() == [1]
    assert "escapes the media root" in reasons_by_id(result)[2]


def test_hostile_media_quarantined_with_reasons(tmp_path, root):
    cases = {
        101: ("./zero_byte.mp4", "empty"),
        102: ("./truncated_moov_lost.mp4", "not a readable media container"),
        103: ("./not_a_video.mp4", "not a readable media container"),
        104: ("./one_frame.mp4", "nframes"),
        105: ("./wide_300_1.mp4", "aspect ratio"),
        106: ("./missing.mp4", "does not exist"),
        107: ("./truncated_frames_lost.mp4", "truncated_frames_lost.mp4"),
    }
    rows = [good_row(1)] + [good_row(pid, path=p) for pid, (p, _) in cases.items()]
    result = run(tmp_path, root, rows)
    assert result.table["problem_id"].to_list() == [1]
    got = reasons_by_id(result)
    for pid, (path, reason) in cases.items():
        assert reason in got[pid], (pid, got[pid])
        assert path[2:] in got[pid]  # the reason names the file
    assert {q["step"] for q in result.quarantine} == {"media"}


def test_quarantine_names_files_as_the_params_do_not_by_this_checkouts_absolute_path(tmp_path, root, monkeypatch):
    """Two checkouts in different directories write the same quarantine file (so DVC hashes it the same): a
    reason names the media root as configured plus the row's path, even inside the decoder's own message."""
    rows = [good_row(1), good_row(2, path="./not_a_video.mp4"), good_row(3, path="./missing.mp4")]
    results = []
    for checkout in ("a", "b"):
        here = tmp_path / checkout
        shutil.copytree(root, here / "media", symlinks=True)
        monkeypatch.chdir(here)
        (here / "rows.json").write_text(json.dumps(rows))
        cfg = CollectConfig(inputs=[RowSource("rows.json", "media")], media=TINY_MEDIA, probe_cache="probe.parquet")
        results.append(collect(cfg).quarantine)
    assert results[0] == results[1]
    reasons = [q["reason"] for q in results[0]]
    assert reasons[0].startswith("media/not_a_video.mp4: not a readable media container")
    assert reasons[1] == "media/missing.mp4: file does not exist"
    assert not any(str(tmp_path) in r for r in reasons), reasons


def test_duplicate_ids_keep_the_first_and_quarantine_the_rest(tmp_path, root):
    result = run(tmp_path, root, [good_row(1), good_row(2), good_row(1, problem="again")])
    assert result.table["problem_id"].to_list() == [1, 2]
    assert result.table["problem"][0] == "Which way does it move?"
    assert [q["step"] for q in result.quarantine] == ["duplicate"]
    assert "duplicate problem_id 1" in result.quarantine[0]["reason"]


def test_balancing_weights_caps_and_determinism(tmp_path, root):
    rows = [good_row(i, data_source="big/x" if i <= 40 else "small") for i in range(1, 51)]
    rules = [SourceRule("big/*", weight=0.5), SourceRule("small", cap=3)]
    a = run(tmp_path, root, rows, sources=rules, seed=7)
    b = run(tmp_path, root, rows, sources=rules, seed=7)
    c = run(tmp_path, root, rows, sources=rules, seed=8)
    assert a.metrics["by_data_source"] == {"big/x": 20, "small": 3}
    assert a.table.equals(b.table)
    assert not a.table.equals(c.table)
    ids = a.table["problem_id"].to_list()
    assert ids == sorted(ids)  # kept rows stay in input order
    assert a.metrics["balance"]["small"] == {"available": 10, "kept": 3, "weight": 1.0, "cap": 3}
    with pytest.raises(ValueError):
        SourceRule("x", weight=1.5)


def test_probe_cache_skips_unchanged_files_and_reprobes_changed_ones(tmp_path, root):
    rows = [good_row(1), good_row(2, path="./one_frame.mp4")]
    first = run(tmp_path, root, rows)
    assert first.metrics["media"] == {"distinct": 2}
    assert first.run == {"media_probed_this_run": 2, "media_from_cache": 0}
    second = run(tmp_path, root, rows)
    assert second.run["media_probed_this_run"] == 0
    assert second.quarantine == first.quarantine
    os.utime(root / "clip.mp4", ns=(1, 1))  # a changed mtime invalidates the entry
    third = run(tmp_path, root, rows)
    assert third.run["media_probed_this_run"] == 1


def test_missing_inputs_and_empty_results_stop_with_clear_errors(tmp_path, root):
    with pytest.raises(FileNotFoundError, match="rows.json"):
        collect(CollectConfig(inputs=[RowSource(str(tmp_path / "rows.json"), str(root))]))
    with pytest.raises(ValueError, match="no valid rows"):
        run(tmp_path, root, [good_row(1, path="./zero_byte.mp4")])
    with pytest.raises(ValueError, match="no rows after balancing"):
        run(tmp_path, root, [good_row(1)], sources=[SourceRule("*", weight=0.0)])


def test_the_synthetic_broken_rows_are_each_quarantined_at_their_step(tmp_path):
    """The default pipeline's train_broken.json: nothing gets through, each row stops where it should."""
    data = tmp_path / "synth"
    data.mkdir()
    broken = write_broken(data)
    (data / "good.json").write_text(json.dumps([good_row(1, path="./broken/ok.png", data_type="image")]))
    cfg = CollectConfig(
        inputs=[RowSource(str(data / "good.json"), str(data)), RowSource(str(data / "train_broken.json"), str(data))],
        media=TINY_MEDIA,
    )
    result = collect(cfg)
    assert result.table["problem_id"].to_list() == [1]
    assert len(result.quarantine) == len(broken) == len(BROKEN_CASES)
    step_of = {q["row"]["data_source"]: q["step"] for q in result.quarantine}
    assert step_of == {f"synth-broken/{name}": step for name, _, _, _, step in BROKEN_CASES}
    for q in result.quarantine:  # the cause is the reason without the file name, so entries count by kind
        assert q["cause"] and str(data) not in q["cause"]
    causes = {q["row"]["data_source"]: q["cause"] for q in result.quarantine}
    assert causes["synth-broken/truncated"] == causes["synth-broken/not_a_video"] == "not a readable media container"
