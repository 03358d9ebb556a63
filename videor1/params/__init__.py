"""Typed, checked configs of every params.yaml section, built in one place (``load.py``).

One dataclass per section, holding each knob's one default; the core's own config classes (MediaRules,
FilterConfig, SftConfig, RLConfig, SynthSpec, TinyModelConfig, ...) are the sections' parts and check their own
ranges. A bad value is a ``ConfigError`` naming the file, the key path and the reason, before any work.

The names below are imported on first use (PEP 562): a section's module pulls in what its core classes need
(transformers for the model configs), and the core modules import ``videor1.params.check`` themselves.
"""

import importlib as _importlib

_EXPORTS = {
    "ConfigError": "check",
    "PARAMS_FILE": "load",
    "ParamsFile": "load",
    "start_stage": "load",
    "RUN_ONLY_KEYS": "fingerprint",
    "result_params": "fingerprint",
    "SynthParams": "synth",
    "BaseModelParams": "base_model",
    "CollectParams": "collect",
    "CotParams": "cot",
    "FilterParams": "filter",
    "SftParams": "sft",
    "PerceiveParams": "sft",
    "RLParams": "rl",
    "EvalParams": "eval",
    "EvalReportParams": "reports",
    "ToyReportParams": "reports",
    "OrchestrationParams": "orchestration",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__():
    return sorted({*globals(), *_EXPORTS})
