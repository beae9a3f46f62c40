"""The pipeline YAML, loaded into frozen pydantic models.

Unknown keys are errors, and every problem in a file is reported at once with its key
path (``stages[2].pii.operator: ...``). Stage option models live in their stage's
module and are looked up through ``curation.core.registry``; the ``checks`` and ``train``
sections are modelled here because ``curation`` is the bottom layer every package reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import polars as pl
import yaml
from pydantic import AliasChoices, BaseModel, Field, ValidationError, ValidationInfo, field_validator

from curation.core.errors import ConfigError, RunError
from curation.core.masking import mask_path, mask_text, mask_value
from curation.core.options import Strict
from curation.core.registry import STAGES, stage_config_class
from curation.core.schema import FORMS, Kind
from curation.core.suggest import did_you_mean


class InputConfig(Strict):
    path: str  # file or glob, relative to the config file's folder
    kind: Kind
    # canonical name -> source column, or a list of source columns whose non-empty values are joined (text columns only)
    fields: dict[str, str | list[str]] = Field(default_factory=dict)
    join_separator: str = "\n\n"  # between the values a `fields` list joins

    @field_validator("fields")
    @classmethod
    def _canonical_names(cls, fields: dict[str, str | list[str]], info: ValidationInfo) -> dict[str, str | list[str]]:
        kind = info.data.get("kind")
        if kind is None:  # the kind itself is invalid: reported on its own
            return fields
        columns = {c for form in FORMS[kind] for c in form.columns} | {"id"}
        texts = {c for form in FORMS[kind] for c in form.text_fields if form.columns[c] == pl.String()}
        for name, source in fields.items():
            if name not in columns:
                expected = ", ".join(c for c in ("id", *dict.fromkeys(c for form in FORMS[kind] for c in form.columns)))
                raise ValueError(f"`{name}` is not a column of the `{kind}` kind; map source columns onto one of {expected}")
            if isinstance(source, list) and name not in texts:
                raise ValueError(f"`{name}`: only text columns can join several source columns; map one column onto it")
            if isinstance(source, list) and (not source or len(set(source)) != len(source)):
                raise ValueError(f"`{name}`: list the source columns to join, each once")
        return fields


class ReportSettings(Strict):
    show_paths: bool = False  # show input file names as given; default: a short hash plus the extension (a name may hold PII)


class RunSettings(Strict):
    seed: int = 0  # every random choice in the run derives from it
    ledger: str | None = None  # SQLite ledger; default <runs root>/ledger.db
    engine: Literal["local", "spark"] = "local"  # spark: stages run on Apache Spark (pip install 'tuneprep[spark]'; docs/spark.md)
    spark_io: Literal["files", "driver"] = "files"  # files: workers read and write the run folder (shared storage); docs/spark.md


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
    "label_variants",
    "label_singletons",
    "min_rows",
    "min_rows_per_class",
    "max_class_share",
    "token_length",
    "residual_pii",
    "chosen_differs",
    "messages_roles",
    "balance_columns",
    "fidelity",
]

Share = Annotated[float, Field(ge=0, le=1)]
DEFAULT_MAX_REWRITE_SHARE = 0.2  # a safe normalize or a precise PII pass rewrites far fewer rows; more deserves a look


class FidelityChecks(Strict):
    """``checks.fidelity``: how much a stage may rewrite the text it keeps before the gate says so."""

    max_rewrite_share: Share | dict[str, Share] = DEFAULT_MAX_REWRITE_SHARE  # of a stage's kept rows; or per stage name
    max_repeated_value_rows: int = Field(50, ge=1)  # rows one replaced word or number may be in (a systematic false positive)

    def share_for(self, stage: str) -> float:
        """The threshold for ``stage``: its entry in a mapping, else ``DEFAULT_MAX_REWRITE_SHARE``."""
        if isinstance(self.max_rewrite_share, dict):
            return self.max_rewrite_share.get(stage, DEFAULT_MAX_REWRITE_SHARE)
        return self.max_rewrite_share


class ChecksConfig(Strict):
    """The ``checks:`` section: thresholds and severities of the gate (docs/checks.md)."""

    min_rows: int = Field(1, ge=0)
    min_rows_per_class: int = Field(1, ge=0)
    max_class_share: float = Field(0.95, gt=0, le=1)  # largest class's share of rows
    label_set: list[str] | None = Field(
        None, validation_alias=AliasChoices("label_set", "labels")
    )  # labels allowed; none enforced by default
    min_tokens: int = Field(1, ge=0)
    max_tokens: int | None = Field(None, ge=1)  # whitespace tokens unless `tokenizer` is set
    tokenizer: str | None = None  # local tokenizer dir (AutoTokenizer, offline) to count tokens with
    max_residual_pii: int = Field(0, ge=0)
    fidelity: FidelityChecks = Field(default_factory=lambda: FidelityChecks.model_validate({}))
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
    # dpo: how a prompt meets the model: `auto` turns an HH transcript into its chat turns (any other prompt is one
    # user turn), `single_turn` makes every prompt one user turn, `raw` uses no chat template (prompt + answer as text)
    prompt_format: Literal["auto", "single_turn", "raw"] = "auto"
    packing: bool = True  # sft/cpt: several examples per block, never attending across examples
    compile: Literal["auto"] | bool = "auto"  # torch.compile the model; auto: on CUDA only
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower
    checkpoint_minutes: float = Field(30, ge=0)  # wall-clock interval between checkpoints; 0: after every step
    eval_max_rows: int = Field(256, ge=0)  # held-out examples evaluated before and after training
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
    report: ReportSettings = Field(default_factory=ReportSettings)  # type: ignore[arg-type]
    base_dir: Path = Path(".")  # where relative paths resolve: the config file's folder

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def options(self, name: str) -> BaseModel | None:
        """The options of the first stage called ``name``, or None when it is not configured."""
        return next((s.options for s in self.stages if s.name == name), None)

    def shown_path(self, path: str | Path) -> str:
        """An input path as logs, reports and the manifest show it (``curation.core.masking.mask_path``)."""
        return mask_path(path, show=self.report.show_paths)

    def to_yaml_dict(self, *, shown: bool = False) -> dict[str, Any]:
        """The resolved config as plain data (every default filled in); ``shown``: as config.yaml holds it.

        config.yaml names the input by ``shown_path`` unless ``report.show_paths``: no
        command reads the input back from a run directory (a rerun takes the user's own
        config), so the real path stays in the user's file only.
        """
        data_input = self.input.model_dump(mode="json")
        if shown:
            data_input["path"] = self.shown_path(self.input.path)
        report = {"report": self.report.model_dump(mode="json")} if self.report != ReportSettings() else {}
        return {
            "input": data_input,
            "stages": [{s.name: s.options.model_dump(mode="json")} for s in self.stages],
            "checks": self.checks.model_dump(mode="json"),
            "train": self.train.model_dump(mode="json"),
            "run": self.run.model_dump(mode="json", exclude={"spark_io"} if self.run.spark_io == "files" else None),  # default: left out
            **report,  # only when set, so that configs without it keep their fingerprints
        }


def format_error(prefix: str, err: Any, model: type[BaseModel] | None = None) -> str:
    """One pydantic error as one line: its key path in backticks, then what is wrong.

    With ``model`` (the validated class), an unknown key gets a did-you-mean: a close
    spelling, or the nested option it belongs to (``minhash.threshold``). Keys and
    messages are masked: a key or a validator's message may quote a value from the data.
    """
    keys = (p if isinstance(p, int) else mask_value(str(p)) for p in err["loc"] if p != "[key]")
    loc = ".".join(str(p) for p in (*([prefix] if prefix else []), *keys))
    msg = mask_text(err["msg"], limit=300)
    if err["loc"][-1:] == ("[key]",):  # a mapping's key, e.g. an unknown check name under `checks.severity`
        msg = f"unknown key; {msg.replace('Input should be', 'expected')}"
    elif err["type"] == "extra_forbidden":
        msg = "unknown key; " + (did_you_mean(model, tuple(err["loc"])) or "remove it or check its spelling")
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
        problems.extend(format_error(f"{where}.{name}", err, stage_config_class(name)) for err in e.errors())
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
        problems.extend(format_error("", err, PipelineConfig) for err in e.errors())
        cfg = None
    if "base_dir" in data:
        problems.append("`base_dir`: unknown key; remove it or check its spelling")
    if problems or cfg is None:
        raise ConfigError(problems)
    return cfg.model_copy(update={"stages": stages})


MAX_YAML_NODES = 100_000  # a config is a few hundred nodes; an alias bomb is billions once expanded


def read_yaml(path: Path) -> Any:
    """Safe YAML with aliases bounded: the document's expanded size is counted before it is built.

    Raises:
        ValueError: the file is not valid YAML, or expands past ``MAX_YAML_NODES`` nodes
            (an alias bomb) or nests too deep; the message is one line.
    """
    try:
        loader = yaml.SafeLoader(path.read_bytes())
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _expanded_size(node, {}, set())
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, "problem_mark", None)
        raise ValueError(f"is not valid YAML{f' at line {mark.line + 1}' if mark is not None else ''}; fix the syntax") from None
    except RecursionError:
        raise ValueError("nests too deep to be a config; fix the structure") from None


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_: set[int]) -> int:
    """Nodes in ``node`` with every alias expanded, memoised on shared nodes; refuses cycles and bombs."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise ValueError("refers to itself through an alias; remove the recursive alias")
    open_.add(key)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes, open_) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes, open_) + _expanded_size(v, sizes, open_) for k, v in node.value)
    if size > MAX_YAML_NODES:
        raise ValueError(f"expands to over {MAX_YAML_NODES:,} values through YAML aliases (an alias bomb?); write the values out")
    open_.discard(key)
    sizes[key] = size
    return size


def read_yaml_file(
    path: str | Path, *, what: str = "config file", hint: str = "pass the path of a pipeline YAML (see `tuneprep run --help`)"
) -> Any:
    """A YAML file's data, or ConfigError in one line: ``what`` not found, a directory, unreadable or not valid YAML."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{what} `{p}` is a directory; {hint}")
    if not p.is_file():
        raise ConfigError(f"{what} `{p}` not found; {hint}")
    try:
        return read_yaml(p)
    except ValueError as e:
        raise ConfigError(f"`{p}` {e} and rerun") from None
    except OSError as e:
        raise ConfigError(f"{what} `{p}` cannot be read ({e.strerror}); check its permissions") from None


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline YAML file. Raises ConfigError listing every problem."""
    p = Path(path)
    hint = "pass the path of a pipeline YAML in it (see `tuneprep run --help`)" if p.is_dir() else None
    data = read_yaml_file(p, **({"hint": hint} if hint else {}))
    return parse_config(data, base_dir=p.resolve().parent)


def read_run_config(run_dir: str | Path) -> PipelineConfig:
    """A run's resolved config, ``RUN/config.yaml``: the one reader check, export, train and report share.

    Raises:
        RunError: the file is missing, not valid YAML, or not a valid pipeline config;
            one line that names the file and says to rerun ``tuneprep run``.
    """
    path = Path(run_dir) / "config.yaml"
    fix = "rerun `tuneprep run` with the run's config and `--out` to rewrite it"
    if not path.is_file():
        raise RunError(f"'{run_dir}' has no config.yaml; it was not made by `tuneprep run`, or {fix}")
    try:
        return parse_config(read_yaml(path), base_dir=Path(run_dir))
    except ValueError as e:
        raise RunError(f"'{path}' {e}; {fix}") from None
    except OSError as e:
        raise RunError(f"'{path}' cannot be read ({e.strerror}); {fix}") from None
    except ConfigError as e:
        raise RunError(f"'{path}' is not a valid run config ({e.problems[0]}); {fix}") from None
