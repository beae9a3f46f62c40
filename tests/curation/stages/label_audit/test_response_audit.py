from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from curation.core.config import parse_config
from curation.core.errors import ConfigError
from curation.core.schema import MESSAGE
from curation.core.stage import StageContext
from curation.stages.label_audit.response_audit import ResponseAuditConfig, exchange, response_findings
from curation.stages.label_audit.stage import LabelAuditConfig, label_audit

LONG_PROMPT = " ".join(["word"] * 500)
ROWS = [
    ("good", "What is the capital of France?", "Paris."),
    ("short", "Capital of France?", "Paris"),
    ("list", "Give three colours.", "Here they are:\n- red\n- green\n- blue"),
    ("code", "Print hello in Python.", "```python\nprint('hello')\n```"),
    ("empty", "Say something.", "   \n "),
    ("echo", "Repeat after me please", "repeat  after me PLEASE"),
    ("cut", "Explain photosynthesis.", "Photosynthesis is the process by which plants turn light, water and carbon dioxide into"),
    ("fence", "Show a loop.", "Sure:\n```python\nfor i in range(3):\n    print(i)"),
    ("refusal", "Write a poem about cats.", "I'm sorry, but I can't help with that request."),
    ("ai", "Tell me a joke.", "As an AI language model, I do not have a sense of humour."),
    ("ratio", LONG_PROMPT, "No."),
]
EXPECTED = {
    ("empty", "response_empty"),
    ("echo", "response_echo"),
    ("cut", "response_truncated"),
    ("fence", "response_truncated"),
    ("refusal", "response_refusal"),
    ("ai", "response_refusal"),
    ("ratio", "response_length_ratio"),
}


def _frame(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["id", "prompt", "completion"], orient="row")


def test_each_check_finds_its_rows_and_leaves_good_answers_alone() -> None:
    found = response_findings(_frame(ROWS), ResponseAuditConfig())
    assert set(found.select("id", "issue").iter_rows()) == EXPECTED
    details = dict(found.filter(pl.col("issue") == "response_truncated").select("id", "detail").iter_rows())
    assert details == {"cut": "ends mid-sentence", "fence": "unclosed code fence"}
    ratio = found.filter(pl.col("issue") == "response_length_ratio")["score"][0]
    assert ratio == pytest.approx(2 / 501)


def test_messages_form_audits_the_last_assistant_message() -> None:
    def msgs(*pairs: tuple[str, str]) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in pairs]

    df = pl.DataFrame(
        {
            "id": ["a", "b", "c"],
            "messages": [
                msgs(
                    ("system", "Be brief."),
                    ("user", "Hi"),
                    ("assistant", "Hello! How can I help?"),
                    ("user", "Say hi back"),
                    ("assistant", "Say hi back"),
                ),
                msgs(("user", "Question?"), ("assistant", "An answer.")),
                msgs(("user", "Only a question")),
            ],
        },
        schema={"id": pl.String, "messages": pl.List(MESSAGE)},
    )
    pairs = exchange(df)
    assert pairs.rows() == [("a", "Say hi back", "Say hi back"), ("b", "Question?", "An answer."), ("c", "Only a question", None)]
    found = response_findings(df, ResponseAuditConfig())
    assert set(found.select("id", "issue").iter_rows()) == {("a", "response_echo"), ("c", "response_empty")}


def test_stage_drops_with_the_issue_as_reason_and_keeps_the_books() -> None:
    df = _frame(ROWS)
    cfg = LabelAuditConfig(actions={"response_empty": "drop", "response_refusal": "drop"})
    result = label_audit(df, cfg, StageContext(kind="instruction"))
    assert dict(result.dropped.select("id", "reason").iter_rows()) == {
        "empty": "response_empty",
        "refusal": "response_refusal",
        "ai": "response_refusal",
    }
    assert result.kept.height + result.dropped.height == df.height
    assert_frame_equal(result.kept, df.filter(~pl.col("id").is_in(["empty", "refusal", "ai"])))
    assert result.stats["issues"]["response_truncated"] == 2
    assert result.stats["dropped"] == {"response_empty": 1, "response_refusal": 2}
    flags = result.findings.filter(pl.col("issue") == "response_truncated")
    assert flags["action"].to_list() == ["flag", "flag"] and flags["given_label"].null_count() == 2


def test_custom_refusal_patterns_and_thresholds() -> None:
    cfg = ResponseAuditConfig(refusal_patterns=[r"^nope\b"], min_words_truncated=100, max_length_ratio=1.5)
    found = response_findings(
        _frame([("n", "Will you?", "Nope, not today."), ("cut", "Explain.", "It is the process by which plants turn light into")]), cfg
    )
    assert set(found.select("id", "issue").iter_rows()) == {("n", "response_refusal"), ("cut", "response_length_ratio")}


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"actions": {"response_refusal": "relabel"}}, "`relabel` applies to label issues only"),
        ({"response": {"refusal_patterns": ["(unclosed"]}}, "is not a valid regex"),
        ({"response": {"min_length_ratio": 5, "max_length_ratio": 2}}, "must be below `max_length_ratio`"),
        ({"response": {"max_words": 3}}, "unknown key"),
    ],
)
def test_config_errors_are_one_line_each(options: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"input": {"path": "x.jsonl", "kind": "instruction"}, "stages": [{"label_audit": options}]})
    assert len(err.value.problems) == 1 and fragment in err.value.problems[0]
    assert "\n" not in err.value.problems[0]


# ---------------------------------------------------------------------------- code answers
COMPLETE_CODE = {
    "python_return_false": "def is_prime(n):\n    if n < 2:\n        return False\n    for i in range(2, n):\n        if n % i == 0:\n            return False\n    return True",
    "python_no_block_end": "total = 0\nfor i in range(10):\n    total += i\nprint(total)\nresult = total",
    "java_brace": "public static String reverseString(String s) {\n    return new StringBuilder(s).reverse().toString();\n}",
    "js_return_line": "Inside the handler, sum the prices and hand the total back:\n\nconst total = items.reduce((a, b) => a + b.price, 0)\nreturn total",
    "bash_fi": 'if [ -f "$1" ]; then\n    wc -l "$1"\nelse\n    echo "no file given to the script"\nfi',
    "bash_done": 'for f in *.txt; do\n  echo "processing the file named $f"\ndone',
    "bash_esac": 'case "$1" in\n  start) echo starting the service now ;;\n  stop)  echo stopping ;;\nesac',
    "ruby_end": 'def greet(name)\n  puts "Hello there, #{name}, welcome back"\nend',
    "sql_semicolon": "SELECT name, COUNT(*) AS orders\nFROM customers\nJOIN orders ON orders.customer_id = customers.id\nGROUP BY name;",
    "fenced_then_done": "Here is a loop that prints each file name:\n\n```bash\nfor f in *; do\n  echo $f\ndone\n```",
    "yaml": "services:\n  web:\n    image: nginx\n    restart: always\n    command: nginx -g daemon off",
    "indented_command": "You can list every file in the folder, hidden ones included, with:\n\n    ls -la",
}


def test_complete_code_in_several_languages_is_not_truncated() -> None:
    rows = [(name, "Write the code for the task described.", code) for name, code in COMPLETE_CODE.items()]
    found = response_findings(_frame(rows), ResponseAuditConfig())
    assert found.filter(pl.col("issue") == "response_truncated").rows() == []


def test_code_and_prose_that_are_really_cut_are_still_flagged() -> None:
    rows = [
        ("prose", "Explain photosynthesis.", "Photosynthesis is the process by which plants turn light, water and carbon dioxide into"),
        (
            "prose_after_code",
            "Show a loop.",
            "```python\nfor i in range(3):\n    print(i)\n```\n\nThis loop prints the numbers from zero to two and then it",
        ),
        ("python_open_call", "Write f.", "def f(values):\n    total = sum(values)\n    return round(total,"),
        (
            "c_open_block",
            "Sum an array.",
            "int sum(int *a, int n) {\n    int s = 0;\n    for (int i = 0; i < n; i++) {\n        s += a[i];",
        ),
        ("js_operator", "Add two numbers.", "function add(a, b) {\n  const total = a +"),
        ("fence", "Show a loop.", "Sure, here it is:\n```python\nfor i in range(3):\n    print(i)"),
    ]
    found = response_findings(_frame(rows), ResponseAuditConfig())
    details = dict(found.filter(pl.col("issue") == "response_truncated").select("id", "detail").iter_rows())
    assert details == {
        "prose": "ends mid-sentence",
        "prose_after_code": "ends mid-sentence",
        "python_open_call": "code stops inside a block",
        "c_open_block": "code stops inside a block",
        "js_operator": "code stops inside a block",
        "fence": "unclosed code fence",
    }
