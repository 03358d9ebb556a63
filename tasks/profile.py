"""Switch the active profile: `python -m tasks.profile paper` (or `tiny`). Keeps params.yaml's comments."""

from __future__ import annotations

import re
import sys

from .params import PARAMS_FILE, load_params


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: python -m tasks.profile {tiny|paper}")
    profile = argv[0]
    params = load_params()
    if profile not in params or profile == "profile":
        sys.exit(f"unknown profile {profile!r}; params.yaml has {[k for k in params if k != 'profile']}")
    text = PARAMS_FILE.read_text()
    text, n = re.subn(r"^profile:\s*\S+", f"profile: {profile}", text, count=1, flags=re.M)
    if n != 1:
        sys.exit("params.yaml has no top-level 'profile:' line")
    PARAMS_FILE.write_text(text)
    print(f"active profile: {profile}")


if __name__ == "__main__":
    main(sys.argv[1:])
