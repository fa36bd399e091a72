"""INSTRUCTOR ONLY -- never released: the reference backward passes the grader's hidden checks compare with.

nbgrader_config.py lists this file in ``CourseDirectory.ignore``, so ``nbgrader generate_assignment`` leaves it out
of release/ and ``nbgrader autograde`` never copies it next to a student's notebook; tests/test_release.py checks
both. The grader loads a trusted copy from source/ex09_backprop/ (grading.course.TRUSTED_MODULES), and the
engine (gradcheck_engine.reference) finds it there; a student's copy of the checker, which has no such file,
measures true gradients by finite differences instead, as gradcheck.py tells students.

A graded case then compares every entry of a returned gradient with these, and first verifies each one against
finite differences along a random direction (gradcheck_compare.Target.expected): a wrong reference is never used
to grade. tests/test_gradcheck.py proves them against full finite differences on every case shape.

LAYERS[cls](inputs, d_out) -> the gradients w.r.t. each input (a list, in forward's order);
nll_grad(X, W, b, Y) -> (d_W, d_b) of the mean NLL of softmax(X @ W + b).
"""
import numpy as np


def _multiply(inputs, d_out):
    x, y = inputs
    return [d_out * y, d_out * x]


def _sum(inputs, d_out):
    (x,) = inputs
    return [np.full(np.shape(x), float(d_out))]


def _dot(inputs, d_out):
    x, y = inputs
    return [float(d_out) * y, float(d_out) * x]


LAYERS = {"Multiply": _multiply, "Sum": _sum, "DotProduct": _dot}


def nll_grad(X, W, b, Y):
    """Gradients of mean(logsumexp(X @ W + b) - <Y, X @ W + b>) w.r.t. W and b."""
    logits = X @ W + b
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    d_logits = (p - Y) / X.shape[0]
    return X.T @ d_logits, d_logits.sum(axis=0)
