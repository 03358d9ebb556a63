"""CoT generation (teachers, resumable runner) and its rule-based filter (spec section 1)."""

from .filter import FilterConfig, FilterResult, apply_filter, repeated_ngram_share, rules, think_text, well_formed
from .runner import generate_cot, row_key
from .scripted import SPOILS, ScriptedTeacher
from .teacher import ModelTeacher, Teacher, TeacherDied, TeacherOutput

__all__ = [
    "SPOILS",
    "FilterConfig",
    "FilterResult",
    "ModelTeacher",
    "ScriptedTeacher",
    "Teacher",
    "TeacherDied",
    "TeacherOutput",
    "apply_filter",
    "generate_cot",
    "repeated_ngram_share",
    "row_key",
    "rules",
    "think_text",
    "well_formed",
]
