"""The examples run as a user runs them, and print what they promise."""
import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def run_example(name, timeout=300):
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, name)], capture_output=True, text=True,
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
