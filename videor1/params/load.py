"""params.yaml to checked section configs: the one place a stage's knobs are read.

    cfg = start_stage("rl", overrides=["train.seed=1"])   # at a stage's start: the file, the model, this machine
    cfg = ParamsFile.read().section("rl")                 # the file alone (validation, tests, tools)

Every refusal is a ``ConfigError`` whose text is one line, ``<file>: <key path>: <reason>``, e.g.
``params.yaml: tiny.rl.train.num_generations: must be >= 2 (got 1)``; a ``--set`` override names itself as the
source of the keys it set (``params.yaml with --set train.seed=x: toy.rl.train.seed: ...``).
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from .check import ConfigError, build, convert, join, nearest

PARAMS_FILE = Path("params.yaml")

# section name -> (module of videor1.params, class): imported on use, so a stage loads only its own section's needs
SECTIONS = {
    "synth": ("synth", "SynthParams"),
    "base_model": ("base_model", "BaseModelParams"),
    "collect": ("collect", "CollectParams"),
    "cot": ("cot", "CotParams"),
    "filter": ("filter", "FilterParams"),
    "sft": ("sft", "SftParams"),
    "perceive": ("sft", "PerceiveParams"),
    "rl": ("rl", "RLParams"),
    "eval": ("eval", "EvalParams"),
    "eval_report": ("reports", "EvalReportParams"),
}


def section_class(name: str) -> type:
    module, cls = SECTIONS[name]
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


@dataclass(frozen=True)
class ParamsFile:
    path: Path
    data: dict

    @classmethod
    def read(cls, path: str | Path = PARAMS_FILE) -> ParamsFile:
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ConfigError("", "does not exist", str(path)) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise ConfigError(
                "", f"not valid YAML ({where}{getattr(err, 'problem', None) or err})", str(path)
            ) from None
        if not isinstance(data, dict):
            raise ConfigError("", "must be a mapping of top-level keys", str(path))
        return cls(path, data)

    def refuse(self, key: str, reason: str) -> ConfigError:
        return ConfigError(key, reason, str(self.path))

    @property
    def profiles(self) -> list[str]:
        """The top-level mappings that hold stage sections (the others are shared blocks, anchors, orchestration)."""
        return [k for k, v in self.data.items() if isinstance(v, dict) and SECTIONS.keys() & v.keys()]

    @property
    def profile(self) -> str:
        profile = self.data.get("profile")
        if profile not in self.profiles:
            hint = f"; {nearest(profile, self.profiles)}" if isinstance(profile, str) else ""
            raise self.refuse("profile", f"must name a profile of this file ({', '.join(self.profiles)}){hint}")
        return profile

    def sections(self, profile: str | None = None) -> dict:
        profile = profile or self.profile
        sections = self.data.get(profile)
        if not isinstance(sections, dict):
            raise self.refuse(profile, "must be a mapping of stage sections")
        for name in sections:
            if name not in SECTIONS:
                raise self.refuse(f"{profile}.{name}", f"unknown section; {nearest(name, SECTIONS)}")
        return sections

    def section(self, stage: str, overrides: Sequence[str] = (), profile: str | None = None):
        """The profile's ``stage`` section as its checked dataclass, with ``key=value`` overrides (read as YAML)."""
        if stage == "toy_report":
            return self.toy_report(profile)
        profile = profile or self.profile
        sections = self.sections(profile)
        key = f"{profile}.{stage}"
        if stage not in sections:
            raise self.refuse(key, "missing: the profile has no such section")
        raw = copy.deepcopy(sections[stage]) if sections[stage] is not None else {}
        applied = apply_overrides(raw, overrides, key, str(self.path))
        cls = section_class(stage)
        top = {"models": self.eval_models(), "profile": profile} if stage == "eval_report" else {}
        try:
            cfg = build(cls, raw, key, exclude=top)
        except ConfigError as err:
            raise err.read_from(source_of(err.key, applied, str(self.path))) from None
        return replace(cfg, **top) if top else cfg

    def eval_models(self) -> tuple[str, ...]:
        """The top-level ``eval_models``: the model directories (under models/) the eval stage evaluates."""
        try:
            models = convert(tuple[str, ...], self.data.get("eval_models", []), "eval_models")
        except ConfigError as err:
            raise err.read_from(str(self.path)) from None
        if len(set(models)) != len(models):
            raise self.refuse("eval_models", f"repeat a name: {list(models)}")
        return models

    def orchestration(self):
        from .orchestration import OrchestrationParams

        try:
            return build(OrchestrationParams, self.data.get("orchestration") or {}, "orchestration")
        except ConfigError as err:
            raise err.read_from(str(self.path)) from None

    def toy_report(self, profile: str | None = None):
        """The toy report's inputs (toy/params.yaml): the experiment, its runs' shared rl.train and the eval frames.
        Each run's knobs are checked as the RL config it trains with."""
        from .reports import Experiment, ToyReportParams

        try:
            experiment = build(Experiment, self.data.get("experiment"), "experiment")
        except ConfigError as err:
            raise err.read_from(str(self.path)) from None
        rl, frames = self.section("rl", profile=profile), self.section("eval", profile=profile).frames
        for group in ("runs", "followup"):
            for name, run in getattr(experiment, group).items():
                try:
                    run.train(rl.train)
                except ConfigError as err:
                    raise self.refuse(f"experiment.{group}.{name}.{err.key}", err.reason) from None
        return ToyReportParams(experiment=experiment, train=rl.train, frames=frames)


def apply_overrides(section: dict, assignments: Sequence[str], prefix: str, path: str) -> dict[str, str]:
    """Set each ``a.b=value`` in ``section`` (in place), the value read as YAML; returns full key -> assignment."""
    applied = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        source = f"{path} with --set {assignment}"
        if not sep or not key:
            raise ConfigError("", "an override must be KEY=VALUE", source)
        target, parts = section, key.split(".")
        for i, part in enumerate(parts[:-1]):
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(join(prefix, ".".join(parts[: i + 1])), "is a knob, not a section", source)
        try:
            target[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(join(prefix, key), f"{value!r} is not a YAML value", source) from None
        applied[join(prefix, key)] = source
    return applied


def source_of(key: str, applied: dict[str, str], path: str) -> str:
    """The override that set ``key`` (or a section above it), else the file."""
    for set_key, source in applied.items():
        if key == set_key or key.startswith((set_key + ".", set_key + "[")) or set_key.startswith(key + "."):
            return source
    return path


def model_positions(model_dir: str | Path) -> int | None:
    """A model directory's max_position_embeddings (its config.json, the text model's); None when it is not there
    yet or says nothing (the stage's own check of the directory then names what is missing)."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    positions = (config.get("text_config") or {}).get("max_position_embeddings", config.get("max_position_embeddings"))
    return positions if isinstance(positions, int) and not isinstance(positions, bool) else None


def start_stage(
    stage: str,
    path: str | Path = PARAMS_FILE,
    *,
    overrides: Sequence[str] = (),
    model_dir: str | Path | None = None,
):
    """The stage's config as at its start: the file's section checked, then against the upstream model it reads
    (``model_dir``, else the section's own: its positions) and this machine."""
    params = ParamsFile.read(path)
    cfg = params.section(stage, overrides)
    key = stage if stage == "toy_report" else f"{params.profile}.{stage}"
    model = model_dir or cfg.model_dir()
    try:
        if model is not None and (positions := model_positions(model)) is not None:
            try:
                cfg.check_model(positions)
            except ConfigError as err:
                raise ConfigError(err.key, f"{err.reason} ({Path(model) / 'config.json'})") from None
        cfg.check_machine()
    except ConfigError as err:
        raise err.under(key).read_from(str(params.path)) from None
    return cfg
