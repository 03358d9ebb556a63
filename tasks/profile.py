"""Switch the active profile: `python -m tasks.profile paper` (or `tiny`). Keeps params.yaml's comments."""

from __future__ import annotations

import re
import sys

from videor1.params import PARAMS_FILE, ConfigError, ParamsFile


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: python -m tasks.profile {tiny|paper}")
    profile = argv[0]
    try:
        profiles = ParamsFile.read(PARAMS_FILE).profiles
    except ConfigError as err:
        sys.exit(f"profile: {err}")
    if profile not in profiles:
        sys.exit(f"unknown profile {profile!r}; {PARAMS_FILE} has {profiles}")
    text = PARAMS_FILE.read_text()
    text, n = re.subn(r"^profile:\s*\S+", f"profile: {profile}", text, count=1, flags=re.M)
    if n != 1:
        sys.exit(f"{PARAMS_FILE} has no top-level 'profile:' line")
    PARAMS_FILE.write_text(text)
    print(f"active profile: {profile}")


if __name__ == "__main__":
    main(sys.argv[1:])
