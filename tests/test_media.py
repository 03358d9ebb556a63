"""Frame sampling rules (spec section 5) by hand-worked cases, and exact frame reading."""

from __future__ import annotations

import decord
import numpy as np
import pytest
import torch
from PIL import Image

from videor1.media import (
    MediaError,
    decode_all_frames,
    frame_indices,
    probe_image,
    probe_video,
    read_frames,
    read_image,
    read_video,
    smart_nframes,
    smart_resize,
)

from .conftest import SAMPLE_MP4

# ---- smart_nframes: n = floor_even(min(max(total / fps_video * 2, 4), max_frames, total))


@pytest.mark.parametrize(
    "total, video_fps, kwargs, expected",
    [
        (491, 22.29, {}, 16),  # 22 s clip: 44 frames at 2 fps, capped at 16
        (30, 30.0, {}, 4),  # 1 s: 2 frames at 2 fps, raised to min_frames 4
        (45, 10.0, {}, 8),  # 4.5 s: 9 -> floor to even 8
        (50, 10.0, {}, 10),
        (3, 30.0, {}, 2),  # fewer frames than min_frames: min(4, 3) = 3 -> even 2
        (900, 30.0, {"max_frames": 64}, 60),  # 30 s at 2 fps
        (900, 30.0, {"max_frames": 63}, 60),  # max_frames floors to even
        (16, 4.0, {"max_frames": 8}, 8),  # the tiny profile's synthetic videos
        (100, 25.0, {"fps": 1.0, "min_frames": 3}, 4),  # min_frames ceils to even
    ],
)
def test_smart_nframes_hand_worked(total, video_fps, kwargs, expected):
    assert smart_nframes(total, video_fps, **kwargs) == expected


@pytest.mark.parametrize("total, video_fps", [(1, 30.0), (0, 30.0), (10, 0.0), (10, float("nan"))])
def test_smart_nframes_rejects_unsamplable(total, video_fps):
    with pytest.raises(ValueError):
        smart_nframes(total, video_fps)


@pytest.mark.parametrize(
    "total, n, expected",
    [
        (10, 4, [0, 3, 6, 9]),
        (16, 8, [0, 2, 4, 6, 9, 11, 13, 15]),  # 2.14, 4.29, 6.43, 8.57, 10.71, 12.86
        (10, 3, [0, 4, 9]),  # 4.5 rounds half to even -> 4
        (8, 3, [0, 4, 7]),  # 3.5 rounds half to even -> 4
        (6, 3, [0, 2, 5]),  # 2.5 -> 2
        (2, 2, [0, 1]),
    ],
)
def test_frame_indices_hand_worked(total, n, expected):
    assert frame_indices(total, n) == expected


def test_frame_indices_equal_qwen_vl_utils_float_reference():
    """The reference computes torch.linspace(0, total - 1, n).round(); our integer version must agree."""
    for total in range(2, 700):
        for n in (2, 4, 8, 16, 32, 64):
            if n <= total:
                ref = torch.linspace(0, total - 1, n).round().long().tolist()
                assert frame_indices(total, n) == ref, (total, n)


@pytest.mark.parametrize(
    "h, w, lo, hi, expected",
    [
        (360, 640, 100352, 100352, (224, 420)),  # too big: beta = sqrt(230400/100352), floor to 28s
        (56, 56, 3136, 3136, (56, 56)),  # already fits
        (10, 10, 3136, 7056, (56, 56)),  # too small: scale up by sqrt(3136/100) = 5.6, ceil
        (100, 200, 784, 1_000_000, (112, 196)),  # round to nearest multiple: 100 -> 112 (3.57 -> 4), 200 -> 196
        (42, 42, 784, 1_000_000, (56, 56)),  # 42/28 = 1.5 rounds half to even -> 2
        (70, 70, 784, 1_000_000, (56, 56)),  # 70/28 = 2.5 rounds half to even -> 2
        (28, 5600, 784, 10_000_000, (28, 5600)),  # aspect ratio exactly 200 is allowed
    ],
)
def test_smart_resize_hand_worked(h, w, lo, hi, expected):
    out = smart_resize(h, w, min_pixels=lo, max_pixels=hi)
    assert out == expected
    assert out[0] % 28 == 0 and out[1] % 28 == 0


def test_smart_resize_rejects_extreme_aspect_and_bad_sizes():
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(2, 600, min_pixels=784, max_pixels=100352)
    with pytest.raises(ValueError):
        smart_resize(0, 10, min_pixels=784, max_pixels=100352)


# ---- exact frames


@pytest.mark.parametrize("name", ["short_gop", "long_gop", "edit_list_cut", "faststart"])
def test_read_frames_equal_sequential_decode(videos, name):
    path = videos[name]
    reference = decode_all_frames(path)
    info = probe_video(path)
    assert info.total_frames == reference.shape[0]
    for n in (2, 8, 16):
        idx = frame_indices(info.total_frames, n)
        assert torch.equal(read_frames(path, idx), reference[idx])
    # out of order and repeated indices come back in the order asked
    idx = [5, 1, 5, info.total_frames - 1]
    assert torch.equal(read_frames(path, idx), reference[idx])


def test_edit_list_cut_counts_frames_a_decode_outputs(videos):
    """The container and decord count the frames the edit list hides; we count what a decode outputs."""
    path = videos["edit_list_cut"]
    decoded = decode_all_frames(path).shape[0]
    import av

    with av.open(str(path)) as c:
        container_count = c.streams.video[0].frames
    assert probe_video(path).total_frames == decoded
    assert container_count != decoded  # the container reports a wrong count
    assert len(decord.VideoReader(str(path))) != decoded  # why decord is not our decoder


@pytest.mark.skipif(not SAMPLE_MP4.is_file(), reason="../shared/media/sample.mp4 is absent")
def test_real_clip_sampling_matches_sequential_decode():
    info = probe_video(SAMPLE_MP4)
    reference = decode_all_frames(SAMPLE_MP4)
    assert info.total_frames == reference.shape[0]
    clip = read_video(SAMPLE_MP4, min_pixels=100352, max_pixels=100352)
    assert clip.indices == frame_indices(info.total_frames, 16)
    assert clip.frames.shape == (16, 3, 224, 420) and clip.frames.dtype == torch.uint8
    assert clip.sample_fps == pytest.approx(16 / info.total_frames * info.fps)
    raw = read_frames(SAMPLE_MP4, clip.indices)
    assert torch.equal(raw, reference[clip.indices])


def test_read_video_resizes_per_spec(videos):
    clip = read_video(videos["short_gop"], max_frames=8, min_pixels=3136, max_pixels=3136)
    # 64x96 rounds to 56x84 = 4704 > 3136, so scale by sqrt(6144/3136) = 1.40 and floor: 28x56
    assert clip.frames.shape == (8, 3, 28, 56)
    assert clip.sample_fps == pytest.approx(8 / 120 * 25)


# ---- hostile media: one exception type, naming the file and the cause


@pytest.mark.parametrize(
    "name, cause",
    [
        ("zero_byte", "empty"),
        ("truncated_moov_lost", "not a readable media container"),
        ("not_a_video", "not a readable media container"),
    ],
)
def test_unreadable_videos_raise_media_error(videos, name, cause):
    path = videos[name]
    with pytest.raises(MediaError, match=cause) as err:
        probe_video(path)
    assert str(path) in str(err.value) and err.value.path == str(path)


def test_truncated_frames_fail_when_read(videos):
    path = videos["truncated_frames_lost"]
    with pytest.raises(MediaError) as err:
        info = probe_video(path)
        read_frames(path, [0, info.total_frames - 1])
    assert str(path) in str(err.value)


def test_one_frame_video_cannot_be_sampled(videos):
    assert probe_video(videos["one_frame"]).total_frames == 1
    with pytest.raises(MediaError, match="nframes"):
        read_video(videos["one_frame"], min_pixels=3136, max_pixels=3136)


def test_extreme_aspect_video_is_refused(videos):
    assert probe_video(videos["wide_300_1"]).width == 600
    with pytest.raises(MediaError, match="aspect ratio"):
        read_video(videos["wide_300_1"], min_pixels=3136, max_pixels=3136)


def test_empty_index_list_is_a_media_error(videos):
    with pytest.raises(MediaError, match="no frame indices"):
        read_frames(videos["short_gop"], [])


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="does not exist"):
        probe_video(tmp_path / "nope.mp4")


# ---- images


def test_images_rgb_resized_and_hostile(tmp_path):
    rgba = Image.new("RGBA", (100, 50), (255, 0, 0, 0))  # fully transparent: composited on white
    rgba.save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png", min_pixels=784, max_pixels=100352)
    assert img.mode == "RGB" and img.size == (112, 56)
    assert np.asarray(img)[10, 10].tolist() == [255, 255, 255]
    assert probe_image(tmp_path / "a.png").height == 50

    Image.new("RGB", (900, 3)).save(tmp_path / "wide.png")
    with pytest.raises(MediaError, match="aspect ratio"):
        read_image(tmp_path / "wide.png", min_pixels=784, max_pixels=100352)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "full.png")
    (tmp_path / "trunc.png").write_bytes((tmp_path / "full.png").read_bytes()[:60])
    for name in ("empty.png", "text.png", "trunc.png"):
        with pytest.raises(MediaError) as err:
            probe_image(tmp_path / name)
        assert name in str(err.value)
