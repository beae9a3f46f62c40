"""Alpaca-style instruction rows (`instruction`, `input`, `output`), code-heavy, generated here.

Shaped like Code Alpaca and Alpaca-GPT4: an instruction, an `input` that is often empty
and otherwise holds the data the instruction is about (an array, a sentence, a snippet),
and an answer that is prose or code in Python, JavaScript, Java, C, Bash, Ruby, SQL or
YAML, with the layouts real answers have: 4-space and tab indentation, blank lines
between functions, aligned comments, Markdown fences, Windows line endings, trailing
spaces and the odd zero-width space pasted from a web page.
"""

from __future__ import annotations

import random
from typing import Any

PYTHON = [
    'def reverse_string(s):\n    """Return s reversed."""\n    return s[::-1]\n\n\nprint(reverse_string("hello"))',
    "def is_prime(n):\n    if n < 2:\n        return False\n    for i in range(2, int(n ** 0.5) + 1):\n        if n % i == 0:\n            return False\n    return True",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        self.items.append(item)\n\n    def pop(self):\n        return self.items.pop()",
    "def largest(arr):\n    best = arr[0]\n    for x in arr[1:]:\n        if x > best:\n            best = x  # keep  the larger\n    return best",
    'import math\n\nPI = 3.14159265358979\n\ndef area(r):\n    return PI * r ** 2\n\nprint("area:   ", area(2))',
    "total = 0\nfor i in range(10):\n\tif i % 2:\n\t\ttotal += i\nprint(total)",
    "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
    'data = {\n    "name":  "Ada",\n    "age":   36,\n}\nfor key, value in data.items():\n    print(f"{key}: {value}")',
]
JAVASCRIPT = [
    "function sum(arr) {\n  let total = 0;\n  for (const x of arr) {\n    total += x;\n  }\n  return total;\n}",
    "const isEven = (n) => {\n    return n % 2 === 0;\n};",
]
JAVA = ["public static String reverseString(String s) {\n    return new StringBuilder(s).reverse().toString();\n}"]
C = ["int max(int a, int b) {\n\tif (a > b) {\n\t\treturn a;\n\t}\n\treturn b;\n}"]
BASH = [
    'for f in *.txt; do\n  echo "$f"\ndone',
    'if [ -f "$1" ]; then\n    wc -l "$1"\nelse\n    echo "no file"\nfi',
    'case "$1" in\n  start) echo starting ;;\n  stop)  echo stopping ;;\nesac',
]
RUBY = ['def greet(name)\n  puts "Hello, #{name}"\nend']
SQL = ["SELECT name, COUNT(*) AS orders\nFROM customers\n    JOIN orders ON orders.customer_id = customers.id\nGROUP BY name;"]
YAML = ['services:\n  web:\n    image: nginx\n    ports:\n      - "80:80"']
CODE = {"python": PYTHON, "javascript": JAVASCRIPT, "java": JAVA, "c": C, "bash": BASH, "ruby": RUBY, "sql": SQL, "yaml": YAML}

CODE_TASKS = [
    ("Write a function that reverses a string.", ""),
    ("Find the largest value in the array.", "[3, 5, 20, 1]"),
    ("Write a program to check whether a number is prime.", "17"),
    ("Implement a stack.", ""),
    ("Compute the area of a circle.", "radius = 2"),
    ("Rewrite the code using tabs.", "for i in range(10): print(i)"),
    ("Write a script for the task.", "Count the lines of a file given as the first argument."),
]
PROSE = [
    ("Give three tips for staying healthy.", "", "1. Eat a balanced diet.\n2. Exercise regularly.\n3. Sleep at least seven hours."),
    ("Summarize the text.", "The quick brown fox jumps over the lazy dog several times a day.", "A fox repeatedly jumps over a dog."),
    ("Translate the sentence into French.", "Where is the station?", "Où est la gare ?"),
    (
        "Explain what an API is.",
        "",
        "An API is a contract that lets one program ask another for data or actions, without knowing how it works inside.",
    ),
]


def _noisy(text: str, rng: random.Random) -> str:
    """Add what real answers carry: CRLF, trailing spaces, a zero-width space."""
    roll = rng.random()
    if roll < 0.15:
        return text.replace("\n", "\r\n")
    if roll < 0.3:
        return text.replace("\n", "  \n", 1)
    if roll < 0.35:
        return text + "\u200b"
    return text


def alpaca_rows(n: int = 200, *, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` rows: about three in four code answers (half of them Python), the rest prose; ``language`` says which."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        if rng.random() < 0.75:
            instruction, given = CODE_TASKS[i % len(CODE_TASKS)]
            language = "python" if rng.random() < 0.5 else rng.choice(sorted(CODE))
            answer = rng.choice(CODE[language])
            if rng.random() < 0.3:
                answer = f"Here is one way:\n\n```{language}\n{answer}\n```"
        else:
            instruction, given, answer = PROSE[i % len(PROSE)]
            language = "prose"
        rows.append({"instruction": f"{instruction} ({i})", "input": given, "output": _noisy(answer, rng), "language": language})
    return rows


def python_parses(answer: str) -> bool:
    """Whether a Python answer (the code itself, or the first fenced block) parses."""
    import ast

    code = answer.split("```python\n", 1)[1].split("\n```", 1)[0] if "```python\n" in answer else answer
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True
