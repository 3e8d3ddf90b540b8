"""Classification of complaint texts measured on labelled texts written for the tests (both languages)."""

from __future__ import annotations

from pathlib import Path

from feedback_intake.classify import Classifier
from yardstick.city import UNCATEGORISED, CityProfile

LABELLED = Path(__file__).with_name("intake_complaints.tsv")
# Measured with the shipped Hangzhou profile and the default threshold (0.15): 205 of 216 = 0.949.
ACCURACY_FLOOR = 0.94


def labelled() -> list[tuple[str, str]]:
    rows = [line.split("\t") for line in LABELLED.read_text(encoding="utf-8").splitlines()
            if line and not line.startswith("#")]
    return [(category, text) for category, text in rows]


def test_the_labelled_set_is_large_bilingual_and_not_copied(city: CityProfile) -> None:
    rows = labelled()
    assert len(rows) >= 200
    assert {c for c, _ in rows} == city.category_ids
    chinese = [t for _, t in rows if any("\u4e00" <= ch <= "\u9fff" for ch in t)]
    assert 80 <= len(chinese) <= len(rows) - 80
    examples = {e.casefold() for c in city.categories for e in c.examples}
    assert not [t for _, t in rows if t.casefold() in examples]


def test_top1_accuracy_reaches_the_measured_floor(city: CityProfile) -> None:
    classifier = Classifier(city)
    rows = labelled()
    right = sum(classifier.classify(text).category_id == category for category, text in rows)
    accuracy = right / len(rows)
    print(f"top-1 accuracy {accuracy:.3f} on {len(rows)} texts")
    assert accuracy >= ACCURACY_FLOOR


def test_a_single_keyword_decides_and_the_model_reports_its_confidence(city: CityProfile) -> None:
    verdict = Classifier(city).classify("我家门口的下水道堵了")
    assert verdict.category_id == "flood-drainage" and verdict.method == "keyword"
    assert verdict.confidence is not None and 0 < verdict.confidence <= 1


def test_text_without_any_cue_is_uncategorised(city: CityProfile) -> None:
    classifier = Classifier(city)
    for text in ("hello", "你好", "thank you very much"):
        verdict = classifier.classify(text)
        assert verdict.category_id == UNCATEGORISED and verdict.method == "none", text


def test_without_keywords_the_model_decides(city: CityProfile) -> None:
    # No keyword of any category appears here; the character n-grams carry it.
    verdict = Classifier(city).classify("The number 12 bus is always late")
    assert verdict.method == "model" and verdict.category_id == "bus"


def test_the_fast_probabilities_equal_sklearns_on_every_labelled_text(city: CityProfile) -> None:
    """The classifier scores one text with plain arrays; sklearn's own pipeline is the reference."""
    classifier = Classifier(city)
    for text, _ in labelled():
        fast = classifier._probabilities(text)
        reference = classifier._probabilities_sklearn(text)
        assert fast.keys() == reference.keys()
        assert max(abs(fast[c] - reference[c]) for c in fast) < 1e-12, text
