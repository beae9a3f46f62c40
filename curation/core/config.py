"""The pipeline YAML, loaded into frozen pydantic models.

Unknown keys are errors, and every problem in a file is reported at once with its key
path (``stages[2].pii.operator: ...``). Stage option models live in their stage's
module and are looked up through ``curation.core.registry``; the ``checks`` and ``train``
sections are modelled here because ``curation`` is the bottom layer every package reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from curation.core.errors import ConfigError
from curation.core.options import Strict
from curation.core.registry import STAGES, stage_config_class
from curation.core.schema import Kind


class InputConfig(Strict):
    path: str  # file or glob, relative to the config file's folder
    kind: Kind
    fields: dict[str, str] = Field(default_factory=dict)  # canonical name -> source column


class RunSettings(Strict):
    seed: int = 0  # every random choice in the run derives from it
    ledger: str | None = None  # SQLite ledger; default <runs root>/ledger.db
    engine: Literal["local", "spark"] = "local"  # spark: stages run on Apache Spark (pip install 'tuneprep[spark]'; docs/spark.md)


class CustomExpectation(Strict):
    type: str  # a Great Expectations expectation class name, e.g. ExpectColumnValuesToMatchRegex
    kwargs: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["critical", "warning"] = "critical"


CheckName = Literal[  # checks.suites.CHECKS
    "required_columns",
    "column_types",
    "not_null",
    "not_empty",
    "unique_ids",
    "no_exact_duplicates",
    "label_set",
    "min_rows",
    "min_rows_per_class",
    "max_class_share",
    "token_length",
    "residual_pii",
    "chosen_differs",
    "messages_roles",
    "balance_columns",
]


class ChecksConfig(Strict):
    """The ``checks:`` section: thresholds and severities of the gate (docs/checks.md)."""

    min_rows: int = Field(1, ge=0)
    min_rows_per_class: int = Field(1, ge=0)
    max_class_share: float = Field(0.95, gt=0, le=1)  # largest class's share of rows
    label_set: list[str] | None = None  # labels allowed; default: none enforced
    min_tokens: int = Field(1, ge=0)
    max_tokens: int | None = Field(None, ge=1)  # whitespace tokens unless `tokenizer` is set
    tokenizer: str | None = None  # local tokenizer dir (AutoTokenizer, offline) to count tokens with
    max_residual_pii: int = Field(0, ge=0)
    # per check name (checks.suites.CHECKS); "off" removes the check from the suite
    severity: dict[
        CheckName,
        Literal["critical", "warning", "off"],
    ] = Field(default_factory=dict)
    custom: list[CustomExpectation] = Field(default_factory=list)

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, v: object) -> object:
        if not isinstance(v, dict):
            return v
        return {k: "off" if s is False else s for k, s in v.items()}  # YAML 1.1 reads a bare `off` as false


class TrainConfig(Strict):
    """The ``train:`` section; docs/training.md explains every option."""

    task: Literal["sft", "cpt", "classify", "dpo"] | None = None  # default from the record kind
    method: Literal["lora", "full"] = "lora"
    model: str | None = None  # HF id or local dir; default: the embedded model for the task
    max_steps: int | None = Field(None, ge=1)  # optimizer steps; default: one pass over the training split
    lr: float | None = Field(None, gt=0, le=1)  # peak learning rate; default by task and method (training.loop.default_lr)
    batch_size: int = Field(8, ge=1)  # rows (packed blocks for sft/cpt) per micro-batch
    grad_accum: int = Field(1, ge=1)  # micro-batches per optimizer step
    max_length: int = Field(512, ge=8)  # tokens per row or packed block; longer examples are truncated
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)  # scale = alpha / r
    eval_fraction: float = Field(0.1, ge=0, lt=1)  # held-out share, drawn with `seed`
    seed: int = 0  # model init, eval split, data order, dropout
    beta: float = Field(0.1, gt=0)  # dpo: strength of the pull towards the reference
    packing: bool = True  # sft/cpt: several examples per block, never attending across examples
    compile: bool = False  # torch.compile the model (CUDA only; pays off on long runs)
    balance_weights: bool = True  # use the balance stage's `sample_weight` and `repeat` columns when present


class StageConfig(Strict):
    """One entry of ``stages:`` after parsing: the stage name and its typed options."""

    name: str
    options: BaseModel


class PipelineConfig(Strict):
    input: InputConfig
    stages: list[StageConfig] = Field(default_factory=list)
    checks: ChecksConfig = Field(default_factory=ChecksConfig)  # type: ignore[arg-type]
    train: TrainConfig = Field(default_factory=TrainConfig)  # type: ignore[arg-type]
    run: RunSettings = Field(default_factory=RunSettings)  # type: ignore[arg-type]
    base_dir: Path = Path(".")  # where relative paths resolve: the config file's folder

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def options(self, name: str) -> BaseModel | None:
        """The options of the first stage called ``name``, or None when it is not configured."""
        return next((s.options for s in self.stages if s.name == name), None)

    def to_yaml_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (every default filled in), for config.yaml."""
        return {
            "input": self.input.model_dump(mode="json"),
            "stages": [{s.name: s.options.model_dump(mode="json")} for s in self.stages],
            "checks": self.checks.model_dump(mode="json"),
            "train": self.train.model_dump(mode="json"),
            "run": self.run.model_dump(mode="json"),
        }


def format_error(prefix: str, err: Any) -> str:
    """One pydantic error as one line: its key path in backticks, then what is wrong."""
    loc = ".".join(str(p) for p in (*([prefix] if prefix else []), *err["loc"]) if p != "[key]")
    msg = err["msg"]
    if err["loc"][-1:] == ("[key]",):  # a mapping's key, e.g. an unknown check name under `checks.severity`
        msg = f"unknown key; {msg.replace('Input should be', 'expected')}"
    elif err["type"] == "extra_forbidden":
        msg = "unknown key; remove it or check its spelling"
    elif err["loc"][-1:] == ("salt",) and err["type"] == "model_type":  # never echo what was given: it may be the salt
        msg = "the salt never goes in the config; name where it is with `salt: {env: VARIABLE}` or `salt: {file: PATH}`"
    elif err["type"] == "missing":
        msg = "required key is missing"
    msg = " ".join(msg.split())  # one line, whatever a validator wrote
    msg = msg[0].lower() + msg[1:] if msg else msg
    return f"`{loc}`: {msg}" if loc else msg


def _parse_stage(i: int, item: Any, problems: list[str]) -> StageConfig | None:
    where = f"stages[{i}]"
    if isinstance(item, str):
        name, options = item, dict[str, Any]()
    elif isinstance(item, dict) and len(item) == 1:
        name, options = next(iter(item.items()))
        options = {} if options is None else options
    else:
        problems.append(f"`{where}`: expected a stage name or a one-key mapping like `pii: {{operator: replace}}`")
        return None
    if name not in STAGES:
        problems.append(f"`{where}`: unknown stage `{name}`; expected one of {', '.join(STAGES)}")
        return None
    if not isinstance(options, dict):
        problems.append(f"`{where}.{name}`: options must be a mapping, got {type(options).__name__}")
        return None
    try:
        model = stage_config_class(name).model_validate(options)
    except ValidationError as e:
        problems.extend(format_error(f"{where}.{name}", err) for err in e.errors())
        return None
    return StageConfig(name=name, options=model)


def parse_config(data: Any, *, base_dir: Path = Path(".")) -> PipelineConfig:
    """Validate already-loaded YAML data. Raises ConfigError listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError("the config must be a mapping with at least `input` and `stages`")
    problems: list[str] = []
    stages: list[StageConfig] = []
    raw_stages = data.get("stages", [])
    if not isinstance(raw_stages, list):
        problems.append("`stages`: expected a list of stage names or one-key mappings")
        raw_stages = []
    for i, item in enumerate(raw_stages):
        stage = _parse_stage(i, item, problems)
        if stage is not None:
            stages.append(stage)
    rest = {k: v for k, v in data.items() if k != "stages"}
    try:
        cfg = PipelineConfig.model_validate({**rest, "base_dir": base_dir})
    except ValidationError as e:
        problems.extend(format_error("", err) for err in e.errors())
        cfg = None
    if "base_dir" in data:
        problems.append("`base_dir`: unknown key; remove it or check its spelling")
    if problems or cfg is None:
        raise ConfigError(problems)
    return cfg.model_copy(update={"stages": stages})


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline YAML file. Raises ConfigError listing every problem."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file `{p}` is a directory; pass the path of a pipeline YAML in it (see `tuneprep run --help`)")
    if not p.is_file():
        raise ConfigError(f"config file `{p}` not found; pass the path of a pipeline YAML (see `tuneprep run --help`)")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"`{p}` is not valid YAML{where}; fix the syntax and rerun") from None
    return parse_config(data, base_dir=p.resolve().parent)
