"""Reference solutions of the graded items, as source strings AND importable objects.

SOURCES[item] is the complete definition that goes into the notebook's answer cell
(it may use the globals ``np``, ``nn`` and ``softmax``, as the notebook does);
IMPLS[item] is the object that source defines, built by exec'ing it below.
"""
import numpy as np
from scipy.special import softmax

import nn

SOURCES = {
    "Multiply.backward": '''
class Multiply:
    def forward(self, x, y):
        self.cache = (x, y)
        return x * y

    def backward(self, d_out):
        x, y = self.cache
        d_x = d_out * y
        d_y = d_out * x
        return d_x, d_y
''',
    "Sum.backward": '''
class Sum:
    def forward(self, x):
        self.cache = x
        return np.sum(x)

    def backward(self, d_out):
        x = self.cache
        d_x = d_out * np.ones_like(x)
        return d_x
''',
    "DotProduct.backward": '''
class DotProduct:
    def forward(self, x, y):
        self.cache = x, y
        return np.dot(x, y)

    def backward(self, d_out):
        x, y = self.cache
        d_x = d_out * y
        d_y = d_out * x
        return d_x, d_y
''',
    "nll_grad": '''
def nll_grad(X, W, b, Y):
    N = X.shape[0]
    probas = softmax(X @ W + b, axis=1) - Y
    d_W = X.T @ probas / N
    d_b = probas.sum(axis=0) / N
    return d_W, d_b
''',
    "LogisticRegression.step": '''
class LogisticRegression:
    def __init__(self, num_features, num_classes, learning_rate=1e-2):
        self.learning_rate = learning_rate
        self.params = {
            'W': np.zeros([num_features, num_classes]),
            'b': np.zeros([num_classes])
        }
        self.affine = nn.Affine()
        self.cross_entropy = nn.CategoricalCrossEntropy()

    def predict(self, X):
        logits = self.affine.forward(X, self.params['W'], self.params['b'])
        return softmax(logits, axis=1)

    def loss(self, X, Y):
        logits = self.affine.forward(X, self.params['W'], self.params['b'])
        return self.cross_entropy.forward(logits, Y)

    def step(self, X, Y):
        loss = self.loss(X, Y)
        grads = {}
        d_logits, _ = self.cross_entropy.backward()
        _, grads['W'], grads['b'] = self.affine.backward(d_logits)
        for p in self.params:
            self.params[p] = self.params[p] - self.learning_rate * grads[p]
        return loss
''',
}

# The object each item's source defines (class or function name).
NAMES = {"Multiply.backward": "Multiply", "Sum.backward": "Sum",
         "DotProduct.backward": "DotProduct", "nll_grad": "nll_grad",
         "LogisticRegression.step": "LogisticRegression"}


def notebook_globals():
    """The globals an answer cell sees in the notebook."""
    return {"np": np, "nn": nn, "softmax": softmax, "__name__": "answer_cell"}


def build(source, name):
    """Exec one answer cell's source and return the object it defines."""
    namespace = notebook_globals()
    exec(compile(source, f"<{name}>", "exec"), namespace)
    return namespace[name]


IMPLS = {item: build(src, NAMES[item]) for item, src in SOURCES.items()}
Multiply = IMPLS["Multiply.backward"]
Sum = IMPLS["Sum.backward"]
DotProduct = IMPLS["DotProduct.backward"]
nll_grad = IMPLS["nll_grad"]
LogisticRegression = IMPLS["LogisticRegression.step"]
