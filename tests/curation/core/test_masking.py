"""The one masking rule: what may be shown of a value from the data, in linear time."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from curation.cli import main
from curation.core.masking import EMAIL, mask_example, mask_path, mask_text, mask_value, mask_value_expr, mask_values, shape
from tests.data.jsonl_files import write_jsonl

FIVE_MB = 5 * 1024 * 1024


def test_mask_text_masks_contact_data_and_keeps_counts() -> None:
    out = mask_text("write to jane.doe@example.com or call (415) 555-0199, see https://x.example/a; 12 rows in 2024")
    assert out == "write to <email> or call (###) ###-####, see <url> 12 rows in 2024"
    assert mask_text("DE89370400440532013000 from 10.0.0.12") == "<iban> from ##.#.#.##"


def test_the_email_pattern_is_linear_on_a_long_token_without_at() -> None:
    """The old pattern retried from every start position of a token: quadratic. This one starts at token boundaries only."""
    token = "a." * (FIVE_MB // 2)
    assert EMAIL.search(token) is None
    assert EMAIL.search(token + " jane@example.com") is not None  # an address after it is still found
    assert mask_text(token).endswith("…") and len(mask_text(token)) <= 4097


def test_mask_value_shows_plain_words_and_hashes_the_rest() -> None:
    for plain in ("billing", "ann_3", "w1042", "c17", "web form", "en-US", "r0"):
        assert mask_value(plain) == plain
    for data in ("jane.doe@example.com", "Jane Doe", "cust-4155550199", "x" * 41, "https://x.example", "a\nb"):
        masked = mask_value(data)
        assert masked.startswith("masked:") and len(masked) == len("masked:") + 8 and masked == mask_value(data)
    assert mask_value(3) == 3 and mask_value(None) is None and mask_value(2.5) == 2.5
    assert mask_values({"Jane Doe": 1, "ok": 2}) == {mask_value("Jane Doe"): 1, "ok": 2}
    assert mask_value("x" * FIVE_MB).startswith("masked:")


def test_mask_value_expr_is_mask_value_per_row() -> None:
    values = ["billing", "jane.doe@example.com", None, "Jane Doe", "billing"]
    out = pl.DataFrame({"v": values}).select(mask_value_expr(pl.col("v"))).to_series().to_list()
    assert out == [None if v is None else mask_value(v) for v in values]


def test_shape_and_example_masks() -> None:
    assert shape("john.smith@example.com", "EMAIL_ADDRESS") == "j***@e******.com"
    assert shape("Zoe Quartermaine", "PERSON") == "Z** Q***********"
    assert (
        mask_example("Hi, I am Jane Doe (jane@example.com), ping @jdoe at 12345")
        == "H***, I am J*** D*** (<email>), ping @<handle> at #####"
    )


def test_mask_path_is_a_short_hash_plus_the_extension() -> None:
    shown = mask_path("data/tickets_jane.doe@example.com.jsonl")
    assert shown.startswith("file-") and shown.endswith(".jsonl") and "jane" not in shown
    assert mask_path(shown) == shown  # already shown: unchanged
    assert mask_path("data/t.csv", show=True) == "data/t.csv"


@pytest.mark.slow
def test_a_5_mb_value_passes_through_run_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 5 MB label and facet value without `@` (the old regex: hours) finish like any other value."""
    huge = "x" * FIVE_MB
    rows = [{"text": f"ticket number {i} about my order", "label": ["billing", "shipping"][i % 2], "source": "web"} for i in range(20)]
    rows[0] |= {"label": huge, "source": huge}
    write_jsonl(tmp_path / "data.jsonl", rows)
    (tmp_path / "p.yaml").write_text(
        "input: {path: data.jsonl, kind: classification}\nstages: [normalize, label_audit, {balance: {facets: [source]}}]\n"
    )
    assert main(["run", str(tmp_path / "p.yaml"), "--out", str(tmp_path / "r"), "-q"]) == 0
    assert main(["report", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    for name in ("report/report.json", "stages/03-balance/stats.json", "stages/02-label_audit/stats.json"):
        text = (tmp_path / "r" / name).read_text()
        assert "x" * 5000 not in text, name  # shown as `masked:<hash>`, not 5 MB of it
    assert mask_value(huge) in json.dumps(json.loads((tmp_path / "r/stages/03-balance/stats.json").read_text()))


def test_input_file_names_are_hashed_unless_show_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl(tmp_path / "tickets_jane.doe@example.com.jsonl", [{"text": "hello there"}, {"text": "general kenobi"}])
    for show in (False, True):
        config = tmp_path / f"p{show}.yaml"
        extra = "report: {show_paths: true}\n" if show else ""
        config.write_text(f"input: {{path: 'tickets_jane.doe@example.com.jsonl', kind: text}}\nstages: [normalize]\n{extra}")
        run_dir = tmp_path / f"r{show}"
        assert main(["run", str(config), "--out", str(run_dir), "-q"]) == 0
        assert main(["report", str(run_dir)]) == 0
        capsys.readouterr()
        shown = [(run_dir / f).read_text() for f in ("manifest.json", "config.yaml", "report/report.md", "report/dataset_card.md")]
        assert all(("jane.doe@example.com" in text) == show for text in shown)
        if not show:
            name = mask_path(str(tmp_path / "tickets_jane.doe@example.com.jsonl"))
            assert name in shown[0] and name.endswith(".jsonl") and name in shown[2]


def test_rerunning_a_runs_own_config_copy_says_why_the_input_is_not_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl(tmp_path / "data.jsonl", [{"text": "hello there"}])
    (tmp_path / "p.yaml").write_text("input: {path: data.jsonl, kind: text}\nstages: [normalize]\n")
    assert main(["run", str(tmp_path / "p.yaml"), "--out", str(tmp_path / "r"), "-q"]) == 0
    capsys.readouterr()
    assert main(["run", str(tmp_path / "r" / "config.yaml"), "--out", str(tmp_path / "r2"), "-q"]) == 2
    assert "looks like a run's config.yaml, which names its input by a hash" in capsys.readouterr().err
