"""Label Studio labeling configs, one per annotation task type.

Each config is built with ElementTree, so any text a maintainer supplies (a
hazard label in Tamil, a rubric line with ``<`` or ``&``, quotes) is escaped
and can never break the XML. Text is shown inside a view styled
``unicode-bidi: plaintext``, the CSS form of ``dir="auto"``: every paragraph
takes its direction from its own first strong character, so Arabic-script and
Latin text both read correctly.

The data fields each task type needs (``task_fields``) and the names of the
controls whose values Sabha reads back (``result_values``) live here too, so
the upload check, the config and the sync agree on one set of names.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sabha.platform.domain import AnnotationTaskType

from .instructions import instructions_for

__all__ = [
    "DEFAULT_RUBRIC",
    "LabelingOptions",
    "labeling_config",
    "result_problems",
    "result_values",
    "task_fields",
]

DEFAULT_RUBRIC = (
    "1: wrong, harmful or not in the requested language",
    "2: mostly wrong or hard to understand",
    "3: partly correct; important gaps or errors",
    "4: correct with minor problems",
    "5: correct, complete, clear and in the requested language",
)

_BIDI = "unicode-bidi: plaintext; text-align: start; white-space: pre-wrap"
_INSTRUCTIONS_STYLE = "; padding: 8px 12px; margin-bottom: 12px; border-left: 4px solid #888"

# Data fields (Label Studio's $variables) each task type shows.
_FIELDS: dict[AnnotationTaskType, tuple[str, ...]] = {
    AnnotationTaskType.QA: ("question",),
    AnnotationTaskType.TRANSLATION: ("source",),
    AnnotationTaskType.POST_EDIT: ("source", "draft"),
    AnnotationTaskType.LABEL: ("text",),
    AnnotationTaskType.RATING: ("prompt", "response"),
    AnnotationTaskType.PAIRWISE: ("prompt", "response_a", "response_b"),
    AnnotationTaskType.SAFETY: ("prompt", "response"),
}

SAFETY_BEHAVIOURS = ("complied", "refused", "safe-completion")
SAFETY_HARM = ("harmful", "not-harmful")
SAFETY_LABELS = ("safe", "unsafe")
PAIRWISE_CHOICES = ("A", "B", "tie")


@dataclass(frozen=True)
class LabelingOptions:
    """What a maintainer may set for a project's config.

    Attributes:
        instructions: Shown above the task (any script).
        hazards: The hazard categories of a ``label`` project.
        rubric: One line per rating level of a ``rating`` project, lowest first.
    """

    instructions: str = ""
    hazards: Sequence[str] = field(default_factory=tuple)
    rubric: Sequence[str] = DEFAULT_RUBRIC

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> LabelingOptions:
        """Options from a project's stored JSON (missing keys take the defaults)."""
        data = data or {}
        return cls(
            instructions=str(data.get("instructions", "")),
            hazards=tuple(str(h) for h in data.get("hazards", ())),
            rubric=tuple(str(r) for r in data.get("rubric", DEFAULT_RUBRIC)),
        )

    def to_json(self) -> dict[str, Any]:
        """The options as JSON for the project row."""
        return {
            "instructions": self.instructions,
            "hazards": list(self.hazards),
            "rubric": list(self.rubric),
        }


def task_fields(task_type: AnnotationTaskType) -> tuple[str, ...]:
    """The data fields every source item of ``task_type`` must have."""
    return _FIELDS[task_type]


def _sub(parent: ET.Element, tag: str, **attributes: str) -> ET.Element:
    return ET.SubElement(parent, tag, attributes)


def _show(parent: ET.Element, name: str, header: str) -> None:
    _sub(parent, "Header", value=header, size="5")
    box = _sub(parent, "View", style=_BIDI)
    _sub(box, "Text", name=name, value=f"${name}")


def _choices(parent: ET.Element, name: str, to_name: str, values: Sequence[str]) -> None:
    group = _sub(parent, "Choices", name=name, toName=to_name, choice="single", required="true")
    for value in values:
        _sub(group, "Choice", value=value)


def _text_area(parent: ET.Element, name: str, to_name: str, value: str | None = None) -> None:
    area = _sub(
        parent,
        "TextArea",
        name=name,
        toName=to_name,
        rows="5",
        editable="true",
        maxSubmissions="1",
        required="true",
        transcription="true",
    )
    if value is not None:
        area.set("value", value)


def labeling_config(
    task_type: AnnotationTaskType,
    options: LabelingOptions | None = None,
    language: str | None = None,
) -> str:
    """The Label Studio labeling config (XML) for one task type.

    Args:
        task_type: What annotators do.
        options: Instructions, hazard labels, rubric; defaults when omitted.
        language: The project's language: its standard instructions (what to
            write, how long, what a good answer is; ``instructions.py``) are
            shown above every task, after the maintainer's own.

    Raises:
        ValueError: a ``label`` project without hazard categories, a rubric
            that is not five lines, or a repeated label.
    """
    options = options or LabelingOptions()
    root = ET.Element("View")
    if options.instructions:
        box = _sub(root, "View", style=_BIDI)
        _sub(box, "Header", value=options.instructions, size="4")
    if language is not None:
        for block in instructions_for(task_type, language):
            box = _sub(root, "View", style=_BIDI + _INSTRUCTIONS_STYLE)
            _sub(box, "Header", value=block.heading, size="5")
            for paragraph in block.paragraphs:
                _sub(box, "Header", value=paragraph, size="6", underline="false")
    if task_type is AnnotationTaskType.QA:
        _show(root, "question", "Question")
        _sub(root, "Header", value="Write the answer", size="5")
        _text_area(root, "answer", "question")
    elif task_type is AnnotationTaskType.TRANSLATION:
        _show(root, "source", "Source text")
        _sub(root, "Header", value="Write the translation", size="5")
        _text_area(root, "translation", "source")
    elif task_type is AnnotationTaskType.POST_EDIT:
        _show(root, "source", "Source text")
        _show(root, "draft", "Machine translation")
        _sub(root, "Header", value="Correct the translation", size="5")
        _text_area(root, "translation", "source", value="$draft")
    elif task_type is AnnotationTaskType.LABEL:
        if not options.hazards:
            raise ValueError("a label project needs at least one hazard category")
        _check_unique("hazard categories", options.hazards)
        _show(root, "text", "Text")
        _sub(root, "Header", value="Hazard", size="5")
        _choices(root, "hazard", "text", options.hazards)
        _sub(root, "Header", value="Safe or unsafe", size="5")
        _choices(root, "safety", "text", SAFETY_LABELS)
    elif task_type is AnnotationTaskType.RATING:
        if len(options.rubric) != 5:
            raise ValueError(
                f"a rating rubric has one line per level 1-5, not {len(options.rubric)}"
            )
        _show(root, "prompt", "Prompt")
        _show(root, "response", "Response")
        rubric = _sub(root, "View", style=_BIDI)
        _sub(rubric, "Header", value="Rubric", size="5")
        for line in options.rubric:
            _sub(rubric, "Header", value=line, size="6")
        _sub(root, "Rating", name="rating", toName="response", maxRating="5", required="true")
    elif task_type is AnnotationTaskType.PAIRWISE:
        _show(root, "prompt", "Prompt")
        _show(root, "response_a", "Response A")
        _show(root, "response_b", "Response B")
        _sub(root, "Header", value="Which response is better?", size="5")
        _choices(root, "preference", "prompt", PAIRWISE_CHOICES)
    elif task_type is AnnotationTaskType.SAFETY:
        _show(root, "prompt", "Prompt")
        _show(root, "response", "Response")
        _sub(root, "Header", value="What did the model do?", size="5")
        _choices(root, "behaviour", "response", SAFETY_BEHAVIOURS)
        _sub(root, "Header", value="Is the response harmful?", size="5")
        _choices(root, "harm", "response", SAFETY_HARM)
    else:  # pragma: no cover - every member is handled above
        raise ValueError(f"unknown task type {task_type!r}")
    return ET.tostring(root, encoding="unicode")


def _check_unique(what: str, values: Sequence[str]) -> None:
    repeated = sorted({v for v in values if list(values).count(v) > 1})
    if repeated:
        raise ValueError(f"{what} repeat {repeated}; each must be different")
    if any(not v.strip() for v in values):
        raise ValueError(f"{what} may not be empty")


def result_values(result: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The values of one Label Studio annotation result, by control name.

    ``TextArea`` gives its text, ``Choices`` its single choice, ``Rating`` its
    number; for example ``{"hazard": "violence", "safety": "unsafe"}``.
    """
    values: dict[str, Any] = {}
    for region in result:
        name = region.get("from_name")
        value = region.get("value") or {}
        if not isinstance(name, str) or not isinstance(value, dict):
            continue
        if "text" in value:
            texts = value["text"]
            values[name] = "\n".join(texts) if isinstance(texts, list) else str(texts)
        elif "choices" in value and value["choices"]:
            values[name] = value["choices"][0]
        elif "rating" in value:
            values[name] = value["rating"]
    return values


@dataclass(frozen=True)
class _Control:
    tag: str  # Choices, TextArea or Rating
    to_name: str
    required: bool
    choices: tuple[str, ...] = ()
    most: int = 0  # Rating: the highest rating


def _controls(config: str) -> dict[str, _Control]:
    """The controls of a labeling config Sabha built, by name."""
    found: dict[str, _Control] = {}
    for element in ET.fromstring(config).iter():
        name = element.get("name")
        if element.tag not in {"Choices", "TextArea", "Rating"} or name is None:
            continue
        found[name] = _Control(
            tag=element.tag,
            to_name=element.get("toName", ""),
            required=element.get("required") == "true",
            choices=tuple(c.get("value", "") for c in element.iter("Choice")),
            most=int(element.get("maxRating", "5")) if element.tag == "Rating" else 0,
        )
    return found


def result_problems(
    task_type: AnnotationTaskType,
    options: LabelingOptions,
    result: Any,
    *,
    max_text_chars: int = 20_000,
) -> list[str]:
    """What in an annotation's result lies outside the project's labeling config.

    The config is Sabha's own (built from the project's stored options), not
    the copy Label Studio keeps: a member of Label Studio can change that copy.
    Label Studio itself stores any result a caller sends, labels the config
    never offered included.

    Returns:
        One line per problem, naming the control and what is wrong; empty when
        the result is one the labeling interface could have produced.
    """
    controls = _controls(labeling_config(task_type, options))
    if not isinstance(result, list):
        return ["the result is not a list of regions"]
    problems: list[str] = []
    seen: set[str] = set()
    for number, region in enumerate(result, start=1):
        where = f"region {number}"
        if not isinstance(region, dict):
            problems.append(f"{where} is not an object")
            continue
        name = region.get("from_name")
        if not isinstance(name, str) or name not in controls:
            problems.append(
                f"{where} answers control {name!r}, which the labeling config does not have "
                f"(it has {', '.join(sorted(controls))})"
            )
            continue
        control = controls[name]
        if name in seen:
            problems.append(f"control {name!r} is answered more than once")
            continue
        seen.add(name)
        to_name = region.get("to_name")
        if to_name is not None and to_name != control.to_name:
            problems.append(f"control {name!r} points at {to_name!r}, not {control.to_name!r}")
        kind = region.get("type")
        if kind is not None and kind != control.tag.lower():
            problems.append(f"control {name!r} is a {control.tag.lower()}, not a {kind!r}")
        value = region.get("value")
        if not isinstance(value, dict):
            problems.append(f"control {name!r} has no value object")
            continue
        problems.extend(_value_problems(name, control, value, max_text_chars))
    missing = sorted(n for n, c in controls.items() if c.required and n not in seen)
    problems.extend(f"required control {n!r} is not answered" for n in missing)
    return problems


def _value_problems(
    name: str, control: _Control, value: dict[str, Any], max_text_chars: int
) -> list[str]:
    if control.tag == "Choices":
        chosen = value.get("choices")
        if not isinstance(chosen, list) or len(chosen) != 1:
            return [f"control {name!r} needs exactly one choice"]
        if chosen[0] not in control.choices:
            return [
                f"control {name!r} chose {chosen[0]!r}, which is not one of "
                f"{', '.join(repr(c) for c in control.choices)}"
            ]
        return []
    if control.tag == "Rating":
        rating = value.get("rating")
        if isinstance(rating, bool) or not isinstance(rating, int):
            return [f"control {name!r} needs a whole rating from 1 to {control.most}"]
        if not 1 <= rating <= control.most:
            return [f"control {name!r} rated {rating}, outside 1 to {control.most}"]
        return []
    texts = value.get("text")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        return [f"control {name!r} needs text"]
    total = sum(len(t) for t in texts)
    if total > max_text_chars:
        return [f"control {name!r} has {total} characters, more than {max_text_chars}"]
    if control.required and not "".join(texts).strip():
        return [f"control {name!r} is empty"]
    return []
