"""Marshmallow schemas: request validation at the edge, and response shapes for OpenAPI."""

from __future__ import annotations

import functools
import re
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from .encodings import FORMATS
from .providers.export.encoder import POOLINGS
from .providers.options import (
    BACKENDS,
    DEVICES,
    INPUT_TYPES,
    PRECISIONS,
    PROVIDERS,
    problem,
)

MAX_INPUTS = 2048
# Characters per input text (KG_MAX_INPUT_CHARS). Models read at most max_seq_length tokens of a
# text (256 for MiniLM, 8192 for the largest), so more is only bytes to parse; OpenAI refuses
# inputs over 8192 tokens. 100 000 characters is ~25 000 tokens of English.
MAX_INPUT_CHARS = 100_000


class StrictBoolean(fields.Boolean):
    """A JSON boolean only: not "yes", "1" or 1."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


# One line of printable text: no NUL (PostgreSQL refuses it in text), no newline or other control
# character (they would forge lines in logs).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
ONE_LINE = {"pattern": "^[^\\u0000-\\u001f\\u007f]*$"}  # the same rule, for the OpenAPI document


def _one_line(value: str) -> None:
    if _CONTROL.search(value):
        raise ValidationError("must be one line of text without control characters")


def _int(low: int, high: int, **kw: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(low, high), **kw)


class ConfigRequestSchema(Schema):
    """Body of POST /admin/embedding/config (and `flask embedding set`)."""

    class Meta:
        unknown = RAISE

    provider = fields.String(required=True, validate=validate.OneOf(PROVIDERS))
    model_name = fields.String(required=True, validate=[validate.Length(1, 200), _one_line],
                               metadata=ONE_LINE)
    embedding_dimensions = _int(1, 65536, required=True)
    precision = fields.String(required=True, validate=validate.OneOf(PRECISIONS), metadata={
        "description": "int8 only with backend onnx or openvino; float16 is refused on the CPU"})
    backend = fields.String(allow_none=True, validate=validate.OneOf(BACKENDS), metadata={
        "description": "local provider: torch (default), onnx (ONNX Runtime) or openvino"})
    max_memory_mb = _int(1, 10_000_000, allow_none=True)
    num_threads = _int(1, 1024, allow_none=True)
    device = fields.String(allow_none=True, validate=validate.OneOf(DEVICES))
    batch_size = _int(1, 4096, allow_none=True)
    max_seq_length = _int(1, 1_000_000, allow_none=True)
    normalize_embeddings = StrictBoolean(allow_none=True)
    updated_by = fields.String(allow_none=True, validate=[validate.Length(1, 100), _one_line],
                               metadata=ONE_LINE)
    allow_dimension_change = StrictBoolean(load_default=False)

    @validates_schema
    def _combination(self, data: dict[str, Any], **kwargs: Any) -> None:
        """Refuse a backend/precision/device combination that cannot work, naming the field."""
        found = problem(data.get("provider"), data.get("backend"), data.get("precision"),
                        data.get("device"))
        if found:
            raise ValidationError(found[1], field_name=found[0])


class InputField(fields.Field):
    """`input`: one non-empty string or a list of 1..2048 non-empty strings, each of at most
    the schema's `max_chars` characters and valid text (no lone surrogates)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ValidationError("must be a string or a list of strings")
        if not items:
            raise ValidationError("must not be an empty list")
        if len(items) > MAX_INPUTS:
            raise ValidationError(f"at most {MAX_INPUTS} inputs per request (got {len(items)})")
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise ValidationError(f"input[{i}] is not a string (token arrays are not "
                                      f"supported; send text)")
            if not item.strip():
                raise ValidationError(f"input[{i}] is empty")
            limit = getattr(self.parent, "max_chars", MAX_INPUT_CHARS)
            if len(item) > limit:
                raise ValidationError(f"input[{i}] has {len(item)} characters; the limit is "
                                      f"{limit} per input (KG_MAX_INPUT_CHARS)")
            bad = _lone_surrogate(item)
            if bad is not None:
                raise ValidationError(f"input[{i}] holds a lone surrogate (U+{ord(item[bad]):04X} "
                                      f"at character {bad}), which is not text; send valid UTF-16 "
                                      f"pairs or UTF-8")
        return items


def _lone_surrogate(text: str) -> int | None:
    """Return the index of the first unpaired surrogate in `text` (JSON's \\ud800), else None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


class TextsRequestSchema(Schema):
    """What /v1/embeddings and /v1/tokenize share: the texts, the model, the task."""

    class Meta:
        unknown = RAISE

    def __init__(self, *args: Any, max_chars: int = MAX_INPUT_CHARS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_chars = max_chars

    input = InputField(required=True, metadata={
        "oneOf": [{"type": "string", "minLength": 1, "maxLength": MAX_INPUT_CHARS},
                  {"type": "array", "minItems": 1, "maxItems": MAX_INPUTS,
                   "items": {"type": "string", "minLength": 1, "maxLength": MAX_INPUT_CHARS}}]})
    model = fields.String(validate=validate.Length(1, 200))
    input_type = fields.String(allow_none=True, validate=validate.OneOf(INPUT_TYPES))


class EmbeddingsRequestSchema(TextsRequestSchema):
    """Body of POST /v1/embeddings (OpenAI-compatible)."""

    encoding_format = fields.String(load_default="float", validate=validate.OneOf(FORMATS),
                                    metadata={"description": "int8, uint8, binary and ubinary are "
                                              "kgserve extensions: base64 of quantized bytes"})
    dimensions = fields.Integer(strict=True, validate=validate.Range(min=1))
    user = fields.String()
    truncate = StrictBoolean(load_default=True, metadata={
        "description": "kgserve extension: false refuses (400) an input longer than the model's "
                       "max_seq_length instead of cutting it"})


class TokenizeRequestSchema(TextsRequestSchema):
    """Body of POST /v1/tokenize (and /tokenize): the same input rules as /v1/embeddings."""


@functools.cache
def texts_schema(kind: type[TextsRequestSchema], max_chars: int) -> TextsRequestSchema:
    """The one `kind` schema for `max_chars`: building a schema costs more than a load with it,
    and a built schema keeps no state between loads."""
    return kind(max_chars=max_chars)


class ResourceAllocationSchema(Schema):
    backend = fields.String(metadata={"enum": list(BACKENDS)})
    max_memory_mb = fields.Integer(allow_none=True)
    num_threads = fields.Integer(allow_none=True)
    device = fields.String(allow_none=True)
    batch_size = fields.Integer(allow_none=True)


class AccuracySchema(Schema):
    """The accuracy guard's figures for an onnx/openvino backend (null for torch);
    also the browser's quantized graph against torch float32, once measured."""

    min_cosine = fields.Float()
    mean_cosine = fields.Float()
    bound = fields.Float()
    probes = fields.Integer()
    reference = fields.String()
    passed = fields.Boolean()


class BrowserSchema(Schema):
    """Where a page finds the active model for transformers.js, and how to match the server."""

    model_url = fields.String(metadata={"description": "the model's folder, transformers.js layout"})
    quantized = fields.Boolean(metadata={"description": "pages load onnx/model_quantized.onnx "
                                                        "(int8 weights) rather than onnx/model.onnx"})
    prefixes = fields.Dict(keys=fields.String(), values=fields.String(),
                           metadata={"description": "task prefix per input_type"})
    dimensions = fields.Integer()
    default_prefix = fields.String()
    pooling = fields.String(metadata={"enum": list(POOLINGS)})
    model_normalize = fields.Boolean(metadata={"description": "the model normalises before any "
                                                              "Matryoshka truncation"})
    normalize = fields.Boolean(metadata={"description": "normalise after truncation"})
    max_seq_length = fields.Integer(allow_none=True)
    model_id = fields.String()
    exported = fields.Boolean(metadata={"description": "false: made on the first download"})
    accuracy = fields.Nested(AccuracySchema, allow_none=True)


class ConfigSummarySchema(Schema):
    """GET /embedding/config: the public summary."""

    config_id = fields.Integer(allow_none=True)
    provider = fields.String()
    model = fields.String()
    dimensions = fields.Integer()
    precision = fields.String()
    supports_browser = fields.Boolean()
    browser = fields.Nested(BrowserSchema, allow_none=True)
    browser_unavailable = fields.String(metadata={"description": "why not, when "
                                                                 "supports_browser is false"})
    resource_allocation = fields.Nested(ResourceAllocationSchema)


class ModelStatusSchema(Schema):
    state = fields.String(metadata={"enum": ["not_loaded", "loading", "ready", "failed"]})
    loading = fields.Boolean()
    config_id = fields.Integer(allow_none=True)
    provider = fields.String(allow_none=True)
    model = fields.String(allow_none=True)
    dimensions = fields.Integer(allow_none=True)
    device = fields.String(allow_none=True)
    backend = fields.String(allow_none=True)
    precision = fields.String(allow_none=True)
    accuracy = fields.Nested(AccuracySchema, allow_none=True)
    load_seconds = fields.Float(allow_none=True)
    last_error = fields.String(allow_none=True)
    pid = fields.Integer()


class ConfigRowSchema(Schema):
    """A row of kg_api.embedding_config."""

    id = fields.Integer()
    provider = fields.String()
    model_name = fields.String()
    embedding_dimensions = fields.Integer()
    precision = fields.String()
    backend = fields.String()
    max_memory_mb = fields.Integer(allow_none=True)
    num_threads = fields.Integer(allow_none=True)
    device = fields.String(allow_none=True)
    batch_size = fields.Integer(allow_none=True)
    max_seq_length = fields.Integer(allow_none=True)
    normalize_embeddings = fields.Boolean(allow_none=True)
    created_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)
    updated_by = fields.String(allow_none=True)
    active = fields.Boolean()


class ActiveConfigSchema(ConfigRowSchema):
    """GET /admin/embedding/config: the active row and this worker's model status."""

    model_status = fields.Nested(ModelStatusSchema)
    stale = fields.Boolean(metadata={"description": "true when served from the last known "
                                                    "config because the database is down"})


class ConfigListSchema(Schema):
    configs = fields.List(fields.Nested(ConfigRowSchema))


class ChangeResultSchema(Schema):
    """Answer to a successful config change or reload."""

    success = fields.Boolean()
    message = fields.String()
    config_id = fields.Integer()
    reload_required = fields.Boolean()


class EmbeddingSchema(Schema):
    object = fields.String()
    index = fields.Integer()
    embedding = fields.Raw(metadata={"oneOf": [
        {"type": "array", "items": {"type": "number"}},
        {"type": "string", "description": "base64 of little-endian float32 (base64), or of the "
                                          "quantized bytes (int8, uint8, binary, ubinary)"}]})


class UsageSchema(Schema):
    prompt_tokens = fields.Integer(metadata={
        "description": "tokens the model saw: after truncation, without padding"})
    total_tokens = fields.Integer()
    truncated_inputs = fields.Integer(metadata={
        "description": "kgserve extension: inputs cut at the model's max_seq_length "
                       "(also in the x-truncated-inputs header)"})


class EmbeddingsResponseSchema(Schema):
    object = fields.String()
    data = fields.List(fields.Nested(EmbeddingSchema))
    model = fields.String()
    usage = fields.Nested(UsageSchema)


class TokensSchema(Schema):
    object = fields.String(metadata={"enum": ["tokens"]})
    index = fields.Integer()
    tokens = fields.List(fields.Integer(), metadata={
        "description": "token ids as the model sees them (task prefix and special tokens "
                       "included), before truncation"})
    count = fields.Integer()
    exceeds_max_seq_length = fields.Boolean(metadata={
        "description": "true when /v1/embeddings would cut this input (or refuse it with "
                       "truncate: false)"})


class TokenizeResponseSchema(Schema):
    object = fields.String()
    model = fields.String()
    max_seq_length = fields.Integer(allow_none=True)
    data = fields.List(fields.Nested(TokensSchema))


class ModelSchema(Schema):
    id = fields.String()
    object = fields.String()
    created = fields.Integer()
    owned_by = fields.String()


class ModelListSchema(Schema):
    object = fields.String()
    data = fields.List(fields.Nested(ModelSchema))


class OpenAIErrorBodySchema(Schema):
    message = fields.String()
    type = fields.String()
    param = fields.String(allow_none=True)
    code = fields.String(allow_none=True)


class OpenAIErrorSchema(Schema):
    error = fields.Nested(OpenAIErrorBodySchema)


class ErrorSchema(Schema):
    success = fields.Boolean()
    error = fields.String()
    message = fields.String()
    param = fields.String()
    fields_ = fields.Dict(data_key="fields")


class HealthSchema(Schema):
    status = fields.String()
    ready = fields.Boolean()
    checks = fields.Dict()
    model = fields.String(allow_none=True)
    config_id = fields.Integer(allow_none=True)
    reasons = fields.List(fields.String())
    scope = fields.String(metadata={
        "enum": ["worker"], "description": "/readyz reports the gunicorn worker that answered"})
    pid = fields.Integer()
