"""What an engine is asked: which model, how to decode, which items; and what it answers.

One shape per concept, shared by submissions, the database's rows and leases:

- **The model source** ``ModelSource``: a hub repository at a commit
  (``HubModelSource``) or a local folder (``LocalModelSource``), told apart by
  ``source``. A submission names one; ``Model.as_source()`` gives a registered
  model's, which every lease carries; ``catalog.find_or_add_model`` registers one.
- **Decoding** flows one way: a benchmark's ``DecodingSpec`` (its file's rule,
  with the per-language ``budget``) and a submission's ``DecodingOverrides``
  make a job's ``DecodingParams`` (``queue.create_job``), stored as the job's
  ``decoding`` and carried by every lease of it to the engine.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from ._base import MAX_TEXT_CHARS, DbId, Message

__all__ = [
    "HUB_REPO_ID_PATTERN",
    "MODEL_NAME_PATTERN",
    "ChatTemplatePolicy",
    "DecodingOverrides",
    "DecodingParams",
    "EngineInfo",
    "GenerationRequest",
    "GenerationResult",
    "HubModelSource",
    "LocalModelSource",
    "ModelName",
    "ModelSource",
]

ChatTemplatePolicy = Literal["auto", "never", "required"]

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
# OWNER/NAME; the hub's oldest models have no owner (``gpt2``), and databases
# made before this rule may hold them: a lease must still be built for them.
HUB_REPO_ID_PATTERN = r"^([A-Za-z0-9][A-Za-z0-9._-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,95}$"
ModelName = Annotated[str, StringConstraints(pattern=MODEL_NAME_PATTERN)]


# -- the model source ---------------------------------------------------------------------


def _absent(value: object) -> None:
    if value is not None:
        raise PydanticCustomError("extra_forbidden", "Extra inputs are not permitted")
    return None


# The other source's fields: null in every lease (a lease names all five keys, as
# protocol 1.0 did), refused like any unknown field when given a value, and left out
# of the API's documentation.
_Absent = Annotated[SkipJsonSchema[None], BeforeValidator(_absent)]


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, str_strip_whitespace=True)


class HubModelSource(_Source):
    """A model on the hub, pinned to one commit."""

    name: ModelName | None = Field(default=None, description="The name on leaderboards")
    source: Literal["hub"]
    path: _Absent = None
    repo_id: Annotated[str, StringConstraints(pattern=HUB_REPO_ID_PATTERN)] = Field(
        description="The repository, e.g. meta-llama/Llama-3.2-1B"
    )
    revision: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}$")] = Field(
        description="The full 40-character commit SHA"
    )

    @property
    def target(self) -> str:
        """The repository id vLLM loads (at ``revision``)."""
        return self.repo_id

    @property
    def shown(self) -> str:
        """How people see it: ``repository@commit``."""
        return f"{self.repo_id}@{self.revision}"


class LocalModelSource(_Source):
    """A model folder (on a server, where SABHA_ALLOW_LOCAL_MODELS is set, or a pool's disk)."""

    name: ModelName | None = Field(default=None, description="The name on leaderboards")
    source: Literal["local"]
    path: str = Field(min_length=1, max_length=1000, description="An absolute folder path")
    repo_id: _Absent = None
    # A registered folder's revision is its digest, checked where it was registered.
    revision: _Absent = None

    @property
    def target(self) -> str:
        """The folder vLLM loads."""
        return self.path

    @property
    def shown(self) -> str:
        """How people see it: the folder."""
        return self.path


ModelSource = Annotated[HubModelSource | LocalModelSource, Field(discriminator="source")]
"""What to load: a hub repository at a pinned commit, or a local folder (by ``source``)."""


# -- decoding -----------------------------------------------------------------------------


class DecodingParams(Message):
    """How a job's answers are generated: greedy by default, with a fixed seed.

    A job's ``decoding`` column holds this as JSON (the keys that were set;
    read it back with ``DecodingParams.model_validate``), and every lease of
    the job carries it to the engine. ``queue.create_job`` makes it from the
    benchmark's ``DecodingSpec`` and a submission's ``DecodingOverrides``.

    ``max_tokens_by_language`` holds a job's per-language budgets (a
    benchmark's ``decoding.budget``, measured with the model's tokenizer when
    the job was made): an item in one of those languages gets that many new
    tokens, any other item ``max_tokens``.
    """

    max_tokens: int = Field(default=64, ge=1, le=32768)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int = 0
    # Generate exactly max_tokens (throughput benchmarks); evaluations stop at EOS.
    ignore_eos: bool = False
    max_tokens_by_language: dict[
        Annotated[str, Field(max_length=35)], Annotated[int, Field(ge=1, le=32768)]
    ] = Field(default_factory=dict, max_length=500)

    def max_tokens_for(self, language: str | None) -> int:
        """The new-token budget of an item in ``language`` (None: ``max_tokens``)."""
        if language is None:
            return self.max_tokens
        return min(self.max_tokens, self.max_tokens_by_language.get(language, self.max_tokens))


def _refuse_booleans(value: object) -> object:
    # Numbers may come as text (the web form), but true is not 1.
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return value


_NOT_A_BOOLEAN = BeforeValidator(_refuse_booleans)


class DecodingOverrides(BaseModel):
    """What a submission may change about a benchmark's decoding, within these bounds.

    ``max_tokens`` may not exceed the benchmark's own ``max_tokens`` (checked by
    ``benchmarks.apply_decoding_overrides``). Overridden decoding is another
    generation identity: its job is scored but not ranked beside the benchmark's own.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: Annotated[float | None, _NOT_A_BOOLEAN] = Field(default=None, ge=0.0, le=2.0)
    top_p: Annotated[float | None, _NOT_A_BOOLEAN] = Field(default=None, gt=0.0, le=1.0)
    max_tokens: Annotated[int | None, _NOT_A_BOOLEAN] = Field(default=None, ge=1, le=4096)


# -- items and answers --------------------------------------------------------------------


class GenerationRequest(Message):
    """One item to answer: the user text (template already filled) and the system prompt.

    ``language`` (the item's tag) picks its budget of new tokens
    (``DecodingParams.max_tokens_for``).
    """

    item_id: DbId
    text: str = Field(max_length=MAX_TEXT_CHARS)
    system: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    language: str | None = Field(default=None, max_length=35)


class GenerationResult(Message):
    """The answer to one request, or the reason it could not be answered.

    ``error`` is a per-item error (prompt longer than the context, tokenizer
    failure): the item is recorded as failed with its reason and scored by
    the documented rule, and the rest of the shard goes on.
    """

    item_id: DbId
    prompt: str = Field(default="", max_length=MAX_TEXT_CHARS)
    text: str = Field(default="", max_length=MAX_TEXT_CHARS)
    finish_reason: str | None = Field(default=None, max_length=20)
    # Self-reported; the platform also refuses more than the job's max_tokens.
    num_tokens: int = Field(default=0, ge=0, le=1_000_000)
    error: str | None = Field(default=None, max_length=2000)


class EngineInfo(BaseModel):
    """Where and with what an engine runs, kept as the provenance of its outputs."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    host: str = ""
    python: str = ""
    vllm: str = ""
    torch: str = ""
    device: str = ""
    dtype: str = ""
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    cuda_graphs: bool = False
    chat_template: bool = False
    # GPUs the model was split across; its all-reduces change the numerics.
    tensor_parallel_size: int = 1
    ray_node_id: str | None = None
    ray_node_ip: str | None = None
    ray_version: str | None = None
