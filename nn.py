"""Reference layers for In-class exercise 9: Deep Learning (Part 1B).

Each layer keeps its forward and backward pass side by side. ``forward`` caches
what ``backward`` needs; ``backward(d_out)`` takes the gradient of the final
loss with respect to the layer's output and returns the gradients with respect
to each of the layer's inputs, in the order ``forward`` takes them.

Shapes: N samples, D features, K classes.

This file is the single source of truth: ``make release`` copies it into the
assignment, and students receive it complete.
"""
import numpy as np


class Affine:
    """Affine map ``X @ W + b`` (a fully connected layer without activation)."""

    def forward(self, X, W, b):
        """Compute the logits.

        Args:
            X: inputs, shape (N, D)
            W: weights, shape (D, K)
            b: bias, shape (K,)

        Returns:
            out: X @ W + b, shape (N, K)
        """
        self.cache = (X, W)
        return X @ W + b

    def backward(self, d_out):
        """Backpropagate through the affine map.

        Args:
            d_out: gradient of the loss w.r.t. the output, shape (N, K)

        Returns:
            d_X: gradient w.r.t. X, shape (N, D)
            d_W: gradient w.r.t. W, shape (D, K)
            d_b: gradient w.r.t. b, shape (K,)
        """
        X, W = self.cache
        d_X = d_out @ W.T
        d_W = X.T @ d_out
        d_b = d_out.sum(axis=0)
        return d_X, d_W, d_b


class CategoricalCrossEntropy:
    """Mean negative log-likelihood of one-hot labels under softmax(logits)."""

    def forward(self, logits, Y):
        """Compute the loss, stably (log-sum-exp with the row maximum subtracted).

        Args:
            logits: unnormalised log-probabilities, shape (N, K)
            Y: labels in one-hot format, shape (N, K)

        Returns:
            loss: mean negative log-likelihood over the N samples, a Python float
        """
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_sum_exp = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_probs = shifted - log_sum_exp
        self.cache = (np.exp(log_probs), Y)
        return float(-np.sum(Y * log_probs) / logits.shape[0])

    def backward(self, d_out=1.0):
        """Backpropagate through the loss.

        Args:
            d_out: gradient of the final objective w.r.t. the loss, a scalar
                (1.0 when the loss is the objective itself)

        Returns:
            d_logits: gradient w.r.t. the logits, shape (N, K)
            d_Y: None; the labels are data, not something we differentiate
        """
        probs, Y = self.cache
        d_logits = d_out * (probs - Y) / Y.shape[0]
        return d_logits, None
