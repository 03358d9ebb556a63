"""Media: frame sampling rules (spec section 5) and exact readers for videos and images."""

from .cache import FrameCache
from .errors import MediaError
from .image import ImageInfo, probe_image, read_image
from .resize import resize_frames, resize_image
from .rules import MediaRules, Medium, load_medium
from .sampling import frame_indices, frame_indices_float32, qwen_vl_utils_max_pixels, smart_nframes, smart_resize
from .video import SampledVideo, VideoInfo, decode_all_frames, probe_video, read_frames, read_video

__all__ = [
    "FrameCache",
    "ImageInfo",
    "MediaError",
    "MediaRules",
    "Medium",
    "SampledVideo",
    "VideoInfo",
    "decode_all_frames",
    "frame_indices",
    "frame_indices_float32",
    "load_medium",
    "probe_image",
    "probe_video",
    "qwen_vl_utils_max_pixels",
    "read_frames",
    "read_image",
    "read_video",
    "resize_frames",
    "resize_image",
    "smart_nframes",
    "smart_resize",
]
