"""Complaint classification: the profile's keyword rules first, a TF-IDF character n-gram model second."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import expit
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import SGDClassifier

from yardstick.city import UNCATEGORISED, CityProfile

Method = Literal["keyword", "model", "none"]


@dataclass(frozen=True)
class Classification:
    category_id: str
    method: Method
    confidence: float | None
    """The model's probability for its top category (None when a keyword rule decided alone)."""


class Classifier:
    """Trained once at start-up on the profile's examples, with each keyword as a tiny example.

    Keywords decide when exactly one category has the most keyword hits; otherwise (no hit,
    or a tie) the model decides among the tied categories, or among all of them, and its
    answer stands only when its probability reaches `min_confidence`.
    """

    def __init__(self, city: CityProfile, *, min_confidence: float = 0.15) -> None:
        self.min_confidence = min_confidence
        self.keywords: dict[str, list[str]] = {
            c.id: sorted({k.casefold() for k in c.keywords}, key=len, reverse=True) for c in city.categories}
        # Each keyword under its first character: a text is searched only for the keywords that start
        # with one of its characters (43 on average for the labelled test texts) instead of all of
        # them (254 in the shipped profile; the search was a fifth of a classification in the service).
        self._keywords_by_start: dict[str, list[tuple[str, str]]] = {}
        for c, words in self.keywords.items():
            for word in words:  # never empty: the profile refuses blank keywords (city.Text)
                self._keywords_by_start.setdefault(word[0], []).append((word, c))
        self._keyword_starts = frozenset(self._keywords_by_start)
        texts: list[str] = []
        labels: list[str] = []
        for category in city.categories:
            for sample in [*category.examples, *category.keywords, category.name, category.name_zh]:
                texts.append(sample.casefold())
                labels.append(category.id)
        self.model: SGDClassifier | None = None
        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True, min_df=1)
        if len(set(labels)) >= 2:
            features = self.vectorizer.fit_transform(texts)
            # Logistic loss for probabilities; SGD fits in a tenth of a second where lbfgs took seconds.
            self.model = SGDClassifier(loss="log_loss", alpha=1e-4, max_iter=1000, tol=1e-4, random_state=0)
            self.model.fit(features, labels)
            # What `predict_proba(vectorizer.transform(...))` computes, kept as plain arrays: for one
            # short text sklearn's per-call checks cost ~8 ms, the arithmetic itself microseconds.
            self._vocabulary: dict[str, int] = self.vectorizer.vocabulary_
            self._coef = self.model.coef_
            # One more column than the vocabulary: where the n-grams it does not know go, with an idf
            # and coefficients of zero, so a text's columns are looked up without a branch each.
            self._unknown = len(self._vocabulary)
            self._idf = np.append(self.vectorizer.idf_, 0.0)
            # One contiguous row per n-gram: a text's few dozen rows are gathered in one take.
            self._coef_rows = np.vstack([self.model.coef_.T, np.zeros((1, self.model.coef_.shape[0]))])
            self._intercept = self.model.intercept_
            self._classes = [str(c) for c in self.model.classes_]

    def keyword_hits(self, text: str) -> dict[str, int]:
        """How many of each category's keywords the text contains (case-folded)."""
        folded = text.casefold()
        hits: dict[str, int] = {}
        # A keyword the text contains starts with one of the text's characters.
        for start in self._keyword_starts.intersection(folded):
            for word, category_id in self._keywords_by_start[start]:
                if word in folded:
                    hits[category_id] = hits.get(category_id, 0) + 1
        return hits

    def classify(self, text: str) -> Classification:
        hits = self.keyword_hits(text)
        candidates: set[str] | None = None
        if hits:
            best = max(hits.values())
            leaders = {c for c, n in hits.items() if n == best}
            if len(leaders) == 1:
                only = next(iter(leaders))
                confidence = self._probabilities(text).get(only) if self.model is not None else None
                return Classification(only, "keyword", confidence)
            candidates = leaders
        if self.model is None:
            return Classification(UNCATEGORISED, "none", None)
        probabilities = self._probabilities(text)
        pool = {c: p for c, p in probabilities.items() if candidates is None or c in candidates}
        category_id, confidence = max(pool.items(), key=lambda kv: kv[1])
        if candidates is not None:
            # A keyword tie: the model only breaks it, so its share among the tied counts.
            confidence = confidence / (sum(pool.values()) or 1.0)
        if confidence < self.min_confidence:
            return Classification(UNCATEGORISED, "none", confidence)
        return Classification(category_id, "model", confidence)

    def _probabilities(self, text: str) -> dict[str, float]:
        assert self.model is not None
        if self._coef.shape[0] == 1:  # two categories: sklearn's binary layout, rare enough to leave to it
            return self._probabilities_sklearn(text)
        # A text's few dozen to few hundred n-grams counted in C (Counter of a list) and looked up in
        # one pass (map); the arithmetic on those arrays: a Python loop a gram cost 70-300 us a text.
        counts = Counter(char_wb_ngrams(text.casefold().lower(), self.vectorizer.ngram_range))
        k = len(counts)
        columns = np.fromiter(map(self._vocabulary.get, counts, itertools.repeat(self._unknown, k)), np.intp, k)
        weights = np.log(np.fromiter(counts.values(), np.float64, k))
        weights += 1.0  # sublinear tf: 1 + log(count)...
        weights *= self._idf[columns]  # ...times idf
        norm = math.sqrt(weights @ weights)  # l2-normalised, as TfidfVectorizer does
        decision = self._intercept
        if norm > 0:
            decision = decision + (weights @ self._coef_rows[columns]) / norm
        row = expit(decision)  # one-vs-rest logistic scores, normalised as SGDClassifier.predict_proba does
        row /= row.sum()
        return dict(zip(self._classes, row.tolist(), strict=True))

    def _probabilities_sklearn(self, text: str) -> dict[str, float]:
        assert self.model is not None
        row = self.model.predict_proba(self.vectorizer.transform([text.casefold()]))[0]
        return {str(c): float(p) for c, p in zip(self.model.classes_, row, strict=True)}


def char_wb_ngrams(text: str, ngram_range: tuple[int, int]) -> list[str]:
    """The n-grams scikit-learn's `char_wb` analyzer yields for an already lower-cased text (the same
    list; tested against it), without its loop a character: each word padded with a space on either
    side, every n-gram of it for n in the range, a padded word no longer than n once as a whole
    (and no longer n-grams of it)."""
    min_n, max_n = ngram_range
    grams: list[str] = []
    for word in text.split():
        padded = f" {word} "
        length = len(padded)
        for n in range(min_n, max_n + 1):
            if length <= n:
                grams.append(padded)
                break
            # The n-grams made in C (the characters; longer ones joined from shifted copies, zipped
            # to the shortest) rather than by a slice a gram in Python.
            grams += padded if n == 1 else map("".join, zip(*[padded[i:] for i in range(n)], strict=False))
    return grams
