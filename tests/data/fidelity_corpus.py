"""Clean, realistic fine-tuning text for ``eval_fidelity.py``, and a mixed set with planted PII.

The clean rows hold essentially no personal data: code answers in Python, Java,
JavaScript, SQL and shell (inside Markdown fences and as bare answers), maths, product
and brand names, short banking and shop support questions (some with capitalised ordinary
words and misspelt brands: "Cancel Transaction", "the Seller says", "Mastecard"), and instructions with their
one-word answers (``False.``). Everything a careless detector mistakes for PII is there on
purpose, in ordinary use: ``String`` and ``Random`` in Java, ``s[::-1]``, ``PI =
3.14159265``, version strings, ports, order numbers, "Do you accept Visa?".

The mixed rows are clean rows with personal data planted in them (a sign-off, a callback
number, an e-mail in a code comment, a card number in a complaint), gold spans recorded,
so precision (findings that are planted values) can be measured. Same seed, same rows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from faker import Faker

from tests.data.pii_corpus import BRAND_TYPOS, OPENER_WORDS, STRESSED_WORDS, UI_LABELS

NAMES = ("items", "values", "numbers", "words", "scores", "prices", "rows", "data", "nums", "lst")
FUNCS = ("reverse_string", "is_palindrome", "count_vowels", "find_max", "sum_list", "fibonacci", "factorial", "merge_sorted")

PYTHON = (
    "def {f}(s):\n    stripped_s = s.strip()\n    return stripped_s[::-1]\n",
    "PI = 3.14159265\n\ndef area(r):\n    return PI * r ** 2\n\nprint(area({n}))\n",
    "import random\n\n{v} = [random.randint(1, 100) for _ in range({n})]\nprint(sorted({v}, reverse=True))\n",
    "def {f}(n):\n    if n <= 1:\n        return 1\n    return n * {f}(n - 1)\n\n\nprint({f}({n}))\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        self.items.append(item)\n\n    def pop(self):\n        return self.items.pop()\n",
    "{v} = {{'apple': 3, 'banana': 5}}\nfor key, value in {v}.items():\n    print(f'{{key}}: {{value}}')\n",
    "def {f}(a, b):\n    result = []\n    i = j = 0\n    while i < len(a) and j < len(b):\n        if a[i] < b[j]:\n            result.append(a[i])\n            i += 1\n        else:\n            result.append(b[j])\n            j += 1\n    return result + a[i:] + b[j:]\n",
    "import requests\n\nresponse = requests.get('https://api.example.com/v2/items', timeout=10)\nprint(response.status_code)\n",
    "from datetime import date\n\ntoday = date(2024, 3, 12)\nprint(today.isoformat())\nVERSION = '2.14.3'\n",
    "def {f}(text):\n    return sum(1 for c in text.lower() if c in 'aeiou')\n\n\nassert {f}('Hello World') == 3\n",
    "HOST = '127.0.0.1'\nPORT = 8080\n\nif __name__ == '__main__':\n    print(f'serving on {{HOST}}:{{PORT}}')\n",
    "{v} = [3.14159265, 2.71828182, 1.41421356]\nprint(round(sum({v}) / len({v}), 4))\n",
)
JAVA = (
    "public static String reverseString(String s) {{\n    return new StringBuilder(s).reverse().toString();\n}}\n",
    "import java.util.Random;\n\npublic class Main {{\n    public static void main(String[] args) {{\n        Random rand = new Random();\n        System.out.println(rand.nextInt({n}));\n    }}\n}}\n",
    'import java.util.ArrayList;\n\nArrayList<String> {v} = new ArrayList<>();\n{v}.add("Java");\n{v}.add("Python");\nSystem.out.println({v}.size());\n',
    "public boolean isEven(int n) {{\n    return n % 2 == 0;\n}}\n",
    'Scanner scanner = new Scanner(System.in);\nint n = scanner.nextInt();\nSystem.out.println("Square: " + n * n);\n',
)
JS = (
    "const total = {v}.reduce((a, b) => a + b, 0);\nconsole.log(total);\n",
    "function {f}(str) {{\n  return str.split('').reverse().join('');\n}}\n",
    "let {v} = [1, 2, 3].map(x => x * 2);\nconsole.log({v}); // [2, 4, 6]\n",
    "fetch('/api/orders/{n}')\n  .then(res => res.json())\n  .then(data => console.log(data));\n",
)
SQL = (
    "SELECT name, salary\nFROM employees\nWHERE salary > 50000\nORDER BY salary DESC;\n",
    "SELECT customer_id, COUNT(*) AS orders\nFROM orders\nGROUP BY customer_id\nHAVING COUNT(*) > {n};\n",
    "CREATE TABLE products (\n  id INTEGER PRIMARY KEY,\n  name TEXT NOT NULL,\n  price DECIMAL(10, 2)\n);\n",
    "UPDATE accounts SET balance = balance - 100 WHERE id = {n};\n",
)
SHELL = (
    'for f in *.txt; do\n  wc -l "$f"\ndone\n',
    'if [ -f config.yaml ]; then\n  echo "config found"\nfi\n',
    "pip install numpy==1.26.4\npython -m pytest -q\n",
    "docker run -p 8080:80 nginx:1.25\n",
)
LANGS = (("python", PYTHON), ("java", JAVA), ("javascript", JS), ("sql", SQL), ("bash", SHELL))
CODE_ASKS = (
    "Write a {lang} function for this task.",
    "Can you show me how to do it in {lang}?",
    "Here is the solution in {lang}:",
    "Generate {lang} code that solves the problem.",
)
MATHS = (
    "What is 3.14159265 times {n}? It is about {x}.",
    "Solve 2x + 3 = {n}. Subtract 3 and divide by 2: x = {x}.",
    "The area of a circle with radius {n} is pi * r^2 = {x} square units.",
    "Compute 1234567 * {n}. The product is {p}.",
    "Convert 0.{n}75 to a fraction and simplify it.",
    "The sequence 1, 1, 2, 3, 5, 8, 13 continues with 21 and 34.",
    "If a train travels {n} km in 1.5 hours, its speed is {x} km/h.",
    "Round 2.71828182 to three decimal places: 2.718.",
)
PRODUCTS = (
    "Do you accept Visa?",
    "Do you accept Visa or Mastercard?",
    "Can I pay with Apple Pay or Google Pay?",
    "Does the Galaxy S24 Ultra support Wi-Fi 7?",
    "Is the Kindle Paperwhite waterproof?",
    "My PlayStation 5 controller will not pair over Bluetooth.",
    "Which is better for coding, a MacBook Air M2 or a ThinkPad X1 Carbon?",
    "Can I top up my account with a Maestro card?",
    "Alexa keeps turning on the lights at night.",
    "Does Netflix work on the Echo Show?",
    "I updated Chrome to version 122.0.6261.94 and now Gmail is slow.",
    "Compare Python and Java for a beginner.",
)
SUPPORT = (
    "I was charged a fee for withdrawing cash.",
    "Why was I charged a fee for transferring money?",
    "My card payment was declined at the supermarket.",
    "How long does a bank transfer take to arrive?",
    "I think someone used my card without permission.",
    "Where is my order {o}? It was due last Tuesday.",
    "The app shows error 0x80070005 when I log in.",
    "Can I change my PIN at an ATM?",
    "My refund for order {o} has not arrived after 10 days.",
    "How do I activate my new card?",
    "The exchange rate for euros looks wrong.",
    "Ticket {t} is still open, any update?",
)
# support text that capitalises ordinary words and misspells brands (spaCy tags such words PERSON)
CAPITALISED_SUPPORT = (
    "{label}",
    "Please look at my Card. As {word} was fine until now, but this evening it got declined. Could you look into it?",
    "I would rather pay with {typo}.",
    "My dog did not like the new bed so it went back to Pet Smart last week. They say the refund is sent but I cannot see it.",
    "Is there any country In the  Eu  where you cannot deliver the card?",
    "HELP. Money has left my account and the {role} says they never got it? When will it reach them?",
    "The {role} says the transfer never arrived, what happened?",
    "I paid for a jacket online twice and it was declined both times. What's Wrong?",
    "Hello, Yesterdays i could not pay in a shop because the card was declined. Please help me.",
    "My {role} has not received the rent I sent on Monday.",
)
INSTRUCTIONS = (
    ("Generate a random password with 12 characters.", "x7$Kq9!mPz2L"),
    ("Classify the sentiment of this review: 'The battery lasts all day.'", "Positive."),
    ("Is the following statement true or false? The sun rises in the west.", "False."),
    ("Is water wet? Answer true or false.", "True."),
    ("Name three primary colors.", "Red, blue and yellow."),
    ("Rewrite the sentence in passive voice: The cat chased the mouse.", "The mouse was chased by the cat."),
    ("Summarize the paragraph in one sentence.", "The article explains how vaccines train the immune system."),
    ("Translate 'Good morning' into French.", "Bonjour."),
    ("Which of the options is a prime number? 4, 6, 7, 9", "7"),
    ("Give an example of a renewable energy source.", "Solar power."),
    ("Which answer is correct?", "None of the above."),
    ("Explain what an API is in one sentence.", "An API is a contract that lets programs talk to each other."),
)
PLANTS = (
    "\n\nIf it still fails, call me on {phone}. Thanks, {name}",
    "\n\nMy name is {name} and my email is {email}.",
    "\n\n# questions: {email}",
    "\n\nPlease refund the card {card} used for this order.",
    "\n\n{name} wrote: this worked for me, reach me at {phone} if not.",
    "\n\nCustomer: {name}\nPhone: {phone}",
    "\n\nThe beneficiary is {name}, IBAN {iban}.",
    "\n\nMy SSN is {ssn}, please update the record.",
)


@dataclass
class Row:
    """One text: its category, whether it is Python code (and where), and planted PII spans ``(entity, start, end)``."""

    category: str
    text: str
    python: str | None = None  # the Python source inside the text, for the parse check
    gold: list[tuple[str, int, int]] = field(default_factory=list)


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        Faker.seed(seed)
        self.fake = Faker("en_US")
        self.iban_fake = Faker("de_DE")
        self.iban_fake.seed_instance(seed + 1)

    def fill(self, template: str) -> str:
        r = self.rng
        n = r.randint(3, 97)
        return template.format(
            f=r.choice(FUNCS),
            v=r.choice(NAMES),
            n=n,
            x=round(n * 3.14159265 / r.randint(1, 4), 2),
            p=1234567 * n,
            o=f"#{r.randint(100000, 999999)}",
            t=f"TCK-{r.randint(10000, 99999)}",
        )

    def code(self) -> Row:
        lang, pool = self.rng.choice(LANGS)
        src = self.fill(self.rng.choice(pool))
        style = self.rng.random()
        if style < 0.4:  # a bare answer: the code alone, as Code Alpaca has them
            return Row(f"{lang}_bare", src, src if lang == "python" else None)
        ask = self.rng.choice(CODE_ASKS).format(lang=lang.capitalize())
        text = f"{ask}\n\n```{lang}\n{src}```\n\nThis runs in linear time."
        return Row(f"{lang}_fenced", text, src if lang == "python" else None)

    def clean(self) -> Row:
        kind = self.rng.choice(("code", "code", "code", "maths", "products", "support", "support_caps", "instructions"))
        if kind == "code":
            return self.code()
        if kind == "support_caps":
            r = self.rng
            words = {
                "label": r.choice(UI_LABELS),
                "word": r.choice(OPENER_WORDS),
                "typo": r.choice(BRAND_TYPOS),
                "role": r.choice(STRESSED_WORDS),
            }
            return Row(kind, r.choice(CAPITALISED_SUPPORT).format(**words))
        if kind == "instructions":
            prompt, answer = self.rng.choice(INSTRUCTIONS)
            return Row("instructions", self.rng.choice((prompt, answer, f"{prompt}\n{answer}")))
        pool = {"maths": MATHS, "products": PRODUCTS, "support": SUPPORT}[kind]
        return Row(kind, self.fill(self.rng.choice(pool)))

    def plant(self, row: Row) -> Row:
        template = self.rng.choice(PLANTS)
        values = {
            "phone": f"({self.rng.randint(201, 989)}) {self.rng.randint(200, 989)}-{self.rng.randrange(10000):04d}",
            "name": f"{self.fake.first_name()} {self.fake.last_name()}",
            "email": self.fake.email(),
            "card": self.fake.credit_card_number(card_type="visa16"),
            "iban": self.iban_fake.iban(),
            "ssn": self.fake.ssn(),
        }
        entities = {"phone": "PHONE_NUMBER", "name": "PERSON", "email": "EMAIL_ADDRESS", "card": "CREDIT_CARD"}
        entities |= {"iban": "IBAN_CODE", "ssn": "US_SSN"}
        text, gold = row.text, list(row.gold)
        for piece in _pieces(template):
            if piece.startswith("{") and piece.endswith("}"):
                key = piece[1:-1]
                gold.append((entities[key], len(text), len(text) + len(values[key])))
                text += values[key]
            else:
                text += piece
        return Row(row.category, text, None, gold)  # the parse check runs on clean rows only


def _pieces(template: str) -> list[str]:
    out, i = [], 0
    while i < len(template):
        j = template.find("{", i)
        if j < 0:
            out.append(template[i:])
            break
        k = template.index("}", j)
        out += [template[i:j], template[j : k + 1]]
        i = k + 1
    return [p for p in out if p]


def make_clean(n: int, *, seed: int = 3) -> list[Row]:
    """``n`` rows with no personal data."""
    gen = _Gen(seed)
    return [gen.clean() for _ in range(n)]


def make_mixed(n: int, *, seed: int = 5) -> list[Row]:
    """``n`` clean rows, each with one planted piece of personal data (one to two values)."""
    gen = _Gen(seed)
    return [gen.plant(gen.clean()) for _ in range(n)]
