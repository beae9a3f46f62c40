"""Choosing the engine: the local engine needs nothing more; Spark without PySpark is a one-line error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from curation.core.config import parse_config
from curation.core.engines import LocalEngine, engine_for
from curation.core.errors import ConfigError
from tests.data.jsonl_files import write_jsonl

# Runs the CLI in a fresh interpreter where `import pyspark` fails, as on a default install.
WITHOUT_PYSPARK = "import sys; sys.modules['pyspark'] = None; from curation.cli import main; sys.exit(main(sys.argv[1:]))"


def _config(tmp_path: Path, run: str = "") -> Path:
    write_jsonl(tmp_path / "data.jsonl", [{"text": "hello there", "label": "a"}])
    path = tmp_path / "pipeline.yaml"
    path.write_text(f"input: {{path: data.jsonl, kind: classification}}\nstages: [normalize]\n{run}", encoding="utf-8")
    return path


@pytest.mark.parametrize("how", ["flag", "config"])
def test_spark_without_pyspark_is_one_line_naming_the_extra(tmp_path: Path, how: str) -> None:
    config = _config(tmp_path, "run: {engine: spark}\n" if how == "config" else "")
    args = [str(config), "--out", str(tmp_path / "run")] + (["--engine", "spark"] if how == "flag" else [])
    done = subprocess.run([sys.executable, "-c", WITHOUT_PYSPARK, "run", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: config error: `engine: spark` needs PySpark, which is not installed: pip install 'tuneprep[spark]' (and Java 17)"
    ]
    assert not (tmp_path / "run").exists()


def test_local_is_the_default_and_spark_options_need_spark(tmp_path: Path) -> None:
    cfg = parse_config({"input": {"path": "x.jsonl", "kind": "text"}}, base_dir=tmp_path)
    assert cfg.run.engine == "local" and isinstance(engine_for(cfg.run.engine), LocalEngine)
    with pytest.raises(ConfigError, match="need `--engine spark`"):
        engine_for("local", spark_master="local[2]")
    with pytest.raises(ConfigError, match="run.engine"):
        parse_config({"input": {"path": "x.jsonl", "kind": "text"}, "run": {"engine": "ray"}}, base_dir=tmp_path)
