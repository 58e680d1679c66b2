"""Temperature scaling on a real dataset: an overfitted softmax regression on scikit-learn's digits,
its test NLL, accuracy and ECE before and after dividing the logits by a temperature fitted on a
validation split, and the before/after reliability diagram.

Maximum likelihood trained past the point of generalising pushes the probabilities towards 0 and 1:
the model stays accurate but becomes overconfident. One scalar T, fitted on held-out data, fixes
most of it without changing a single prediction (argmax(z / T) = argmax(z)).

    pip install "logitloss[plot]" scikit-learn
    python examples/calibrate_digits.py reliability_digits.png

The digits ship inside scikit-learn's wheel (no download). Runs in a few seconds.
"""

from __future__ import annotations

import argparse

import numpy as np

import logitloss
from logitloss.calibration import expected_calibration_error, fit_temperature, reliability_diagram


def load_splits(seed: int = 0):
    """The 1797 8x8 digits, pixels scaled to [0, 1] plus a bias feature, split into train (300),
    validation (500) and test (the remaining 997) at random."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    features = np.hstack([digits.data / 16.0, np.ones((len(digits.data), 1))]).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(features))
    train, validation, test = order[:300], order[300:800], order[800:]
    return [(features[part], digits.target[part]) for part in (train, validation, test)]


def train_softmax_regression(features, labels, n_classes=10, steps=20000, learning_rate=50.0):
    """Full-batch gradient descent on the mean cross-entropy, no regularisation: with 65 features
    and 300 samples the training set is separable, and the weights keep growing along the separating
    direction (the large step gets there in seconds): overfitting in its purest form. The loss and
    its gradient in the logits come from one fused logitloss call."""
    weights = np.zeros((features.shape[1], n_classes), np.float32)
    for _ in range(steps):
        _, grad_logits = logitloss.cross_entropy(features @ weights, labels, return_grad=True)
        weights -= learning_rate * (features.T @ grad_logits)
    return weights


def report(name, logits, labels):
    nll = float(logitloss.cross_entropy(logits.astype(np.float64), labels))
    accuracy = float(np.mean(logits.argmax(axis=1) == labels))
    ece = expected_calibration_error(logits, labels)
    print(f"{name:<22} NLL {nll:.4f}   accuracy {accuracy:.4f}   ECE {ece:.4f}")
    return {"nll": nll, "accuracy": accuracy, "ece": ece}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("png", help="where to save the before/after reliability diagram")
    args = parser.parse_args(argv)

    (x_train, y_train), (x_validation, y_validation), (x_test, y_test) = load_splits()
    weights = train_softmax_regression(x_train, y_train)
    temperature = fit_temperature(x_validation @ weights, y_validation)
    print(f"temperature fitted on the validation split: T = {float(temperature):.4f}")
    test_logits = x_test @ weights
    before = report("test, T = 1", test_logits, y_test)
    after = report(f"test, T = {float(temperature):.3f}", test_logits / np.float32(temperature), y_test)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 4), sharey=True)
    reliability_diagram(test_logits, y_test, ax=left, label="T = 1")
    right._get_lines.get_next_color()  # the "after" panel in the second colour
    reliability_diagram(test_logits / np.float32(temperature), y_test, ax=right, label=f"T = {float(temperature):.2f}")
    left.set_title("before: overfitted, overconfident")
    right.set_title("after temperature scaling")
    right.set_ylabel("")
    figure.suptitle("softmax regression on scikit-learn's digits, test split")
    figure.tight_layout()
    figure.savefig(args.png, dpi=72)
    print(f"reliability diagram: {args.png}")
    return {"temperature": float(temperature), "before": before, "after": after}


if __name__ == "__main__":
    main()
