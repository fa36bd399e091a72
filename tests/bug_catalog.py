"""Buggy answers that gradcheck must catch, with the exact grade each one earns.

Each Bug.source is the complete answer-cell definition (it may use the notebook
globals np, nn and softmax). ``expected_points`` is what gradcheck.grade() gives;
``diagnosis`` is a substring its printed diagnosis must contain (None where no
named mistake applies). tests/test_gradcheck.py checks every entry.

Points per sub-check (see gradcheck.ITEMS):
  Multiply/DotProduct: outputs .25, d_x .5, d_y .5, latest cache .5, inputs unchanged .25
  Sum: outputs .25, d_x .5, latest cache .125, inputs unchanged .125
  nll_grad: outputs .5, d_W 1, d_b 1, inputs unchanged .5
  step: loss before update .5, W update .75, b update .5, inputs unchanged .25
"""
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Bug:
    name: str
    item: str
    source: str
    expected_points: float
    diagnosis: Optional[str]


def _multiply(backward, forward=None):
    forward = forward or """
    def forward(self, x, y):
        self.cache = (x, y)
        return x * y
"""
    return "\nclass Multiply:" + forward + backward


def _sum(backward, forward=None):
    forward = forward or """
    def forward(self, x):
        self.cache = x
        return np.sum(x)
"""
    return "\nclass Sum:" + forward + backward


def _dot(backward):
    return """
class DotProduct:
    def forward(self, x, y):
        self.cache = x, y
        return np.dot(x, y)
""" + backward


def _logreg(step):
    return """
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
""" + step


_STEP_HEAD = """
    def step(self, X, Y):
        loss = self.loss(X, Y)
        grads = {}
        d_logits, _ = self.cross_entropy.backward()
        _, grads['W'], grads['b'] = self.affine.backward(d_logits)
"""

_NLL_HEAD = """
def nll_grad(X, W, b, Y):
    N = X.shape[0]
"""

BUGS = [
    # ---------------------------------------------------------------- Multiply
    Bug("multiply_sign_flipped_d_y", "Multiply.backward", _multiply("""
    def backward(self, d_out):
        x, y = self.cache
        return d_out * y, -d_out * x
"""), 1.5, "sign flipped"),
    Bug("multiply_outputs_swapped", "Multiply.backward", _multiply("""
    def backward(self, d_out):
        x, y = self.cache
        return d_out * x, d_out * y
"""), 0.5, "outputs swapped"),
    Bug("multiply_d_out_ignored", "Multiply.backward", _multiply("""
    def backward(self, d_out):
        x, y = self.cache
        return y, x
"""), 0.5, "d_out ignored"),
    Bug("multiply_factor_2", "Multiply.backward", _multiply("""
    def backward(self, d_out):
        x, y = self.cache
        return 2 * d_out * y, d_out * x
"""), 1.5, "constant factor 2"),
    Bug("multiply_stale_cache", "Multiply.backward", _multiply("""
    def backward(self, d_out):
        x, y = self.cache
        return d_out * y, d_out * x
""", forward="""
    cache = None

    def forward(self, x, y):
        if self.cache is None:          # caches only the first call
            self.cache = (x, y)
        return x * y
"""), 1.5, "stale cache"),
    Bug("multiply_float32", "Multiply.backward", _multiply("""
    def backward(self, d_out):
        x, y = self.cache
        return (d_out * y).astype(np.float32), (d_out * x).astype(np.float32)
"""), 1.75, "float32"),
    Bug("multiply_returns_list", "Multiply.backward", _multiply("""
    def backward(self, d_out):
        x, y = self.cache
        return [d_out * y, d_out * x]
"""), 2.0, None),
    Bug("multiply_mutates_d_out", "Multiply.backward", _multiply("""
    def backward(self, d_out):
        x, y = self.cache
        d_x = d_out
        d_x *= y              # also overwrites d_out ...
        d_y = d_out * x       # ... so d_y is d_out * y * x
        return d_x, d_y
"""), 1.25, "modified its input d_out"),
    Bug("multiply_returns_stacked_array", "Multiply.backward", _multiply("""
    def backward(self, d_out):
        x, y = self.cache
        return np.array([d_out * y, d_out * x])
"""), 0.0, "expected a tuple"),
    Bug("multiply_returns_none", "Multiply.backward", _multiply("""
    def backward(self, d_out):
        x, y = self.cache
        d_x = d_out * y
        d_y = d_out * x
"""), 0.0, "returned None"),
    Bug("multiply_masked_array", "Multiply.backward", _multiply("""
    def backward(self, d_out):
        x, y = self.cache
        return np.ma.masked_array(d_out * y), np.ma.masked_array(d_out * x)
"""), 0.0, "MaskedArray"),
    Bug("multiply_lookalike_always_equal", "Multiply.backward", _multiply("""
    def backward(self, d_out):
        x, y = self.cache

        class Anything:                       # compares equal to everything and
            def __init__(self, v):            # converts to the right values
                self.v, self.shape, self.dtype = v, v.shape, v.dtype
            def __array__(self, dtype=None, copy=None):
                return self.v
            def __eq__(self, other):
                return True
            def __sub__(self, other):
                return 0.0
            __rsub__ = __sub__
            def __abs__(self):
                return 0.0
            def __lt__(self, other):
                return True
            __le__ = __lt__

        return Anything(d_out * y), Anything(d_out * x)
"""), 0.0, "expected a numpy array"),
    Bug("multiply_not_implemented", "Multiply.backward", _multiply("""
    def backward(self, d_out):
        raise NotImplementedError()
"""), 0.0, "not implemented yet (NotImplementedError)"),
    Bug("multiply_crashes_on_matrices", "Multiply.backward", _multiply("""
    def backward(self, d_out):
        x, y = self.cache
        return d_out * y, d_out * x.T     # right for vectors only
"""), 0.0, "backward raised ValueError"),
    # --------------------------------------------------------------------- Sum
    Bug("sum_returns_scalar", "Sum.backward", _sum("""
    def backward(self, d_out):
        return d_out
"""), 0.0, "expected a numpy array"),
    Bug("sum_d_out_ignored", "Sum.backward", _sum("""
    def backward(self, d_out):
        x = self.cache
        return np.ones_like(x)
"""), 0.375, "d_out ignored"),
    Bug("sum_wrong_shape", "Sum.backward", _sum("""
    def backward(self, d_out):
        x = self.cache
        return d_out * np.ones(x.shape[0])
"""), 0.0, "has shape"),
    Bug("sum_stale_cache", "Sum.backward", _sum("""
    def backward(self, d_out):
        x = self.cache
        return d_out * np.ones_like(x)
""", forward="""
    def forward(self, x):
        if not hasattr(self, 'cache'):   # caches only the first call
            self.cache = x
        return np.sum(x)
"""), 0.875, "stale cache"),
    Bug("sum_overwrites_x", "Sum.backward", _sum("""
    def backward(self, d_out):
        x = self.cache
        x[...] = d_out        # reuses x's memory: overwrites the caller's array
        return x
"""), 0.875, "modified its input x"),
    Bug("sum_int_dtype", "Sum.backward", _sum("""
    def backward(self, d_out):
        x = self.cache
        return np.full(x.shape, d_out, dtype=int)
"""), 0.0, "dtype int"),
    # -------------------------------------------------------------- DotProduct
    Bug("dot_product_outputs_swapped", "DotProduct.backward", _dot("""
    def backward(self, d_out):
        x, y = self.cache
        return d_out * x, d_out * y
"""), 0.5, "outputs swapped"),
    Bug("dot_product_outer", "DotProduct.backward", _dot("""
    def backward(self, d_out):
        x, y = self.cache
        return np.outer(d_out, y), d_out * x
"""), 1.25, "has shape (1, 6)"),
    Bug("dot_product_d_out_ignored", "DotProduct.backward", _dot("""
    def backward(self, d_out):
        x, y = self.cache
        return y, x
"""), 0.5, "d_out ignored"),
    Bug("dot_product_sign_flipped", "DotProduct.backward", _dot("""
    def backward(self, d_out):
        x, y = self.cache
        return -d_out * y, -d_out * x
"""), 0.5, "sign flipped"),
    Bug("dot_product_float32", "DotProduct.backward", _dot("""
    def backward(self, d_out):
        x, y = self.cache
        return np.float32(d_out) * y.astype(np.float32), np.float32(d_out) * x.astype(np.float32)
"""), 1.75, "dtype float32"),
    Bug("dot_product_scalar_d_y", "DotProduct.backward", _dot("""
    def backward(self, d_out):
        x, y = self.cache
        return d_out * y, d_out * np.sum(x)
"""), 1.0, "d_y has type float64, expected a numpy array"),
    # ---------------------------------------------------------------- nll_grad
    Bug("nll_grad_missing_1_over_n", "nll_grad", _NLL_HEAD + """
    probas = softmax(X @ W + b, axis=1) - Y
    return X.T @ probas, probas.sum(axis=0)
""", 1.0, "missing 1/N"),
    Bug("nll_grad_extra_1_over_n", "nll_grad", _NLL_HEAD + """
    probas = (softmax(X @ W + b, axis=1) - Y) / N
    return X.T @ probas / N, probas.sum(axis=0) / N
""", 1.0, "extra 1/N"),
    Bug("nll_grad_y_minus_probs", "nll_grad", _NLL_HEAD + """
    probas = Y - softmax(X @ W + b, axis=1)
    return X.T @ probas / N, probas.sum(axis=0) / N
""", 1.0, "sign flipped"),
    Bug("nll_grad_no_softmax", "nll_grad", _NLL_HEAD + """
    probas = X @ W + b - Y
    return X.T @ probas / N, probas.sum(axis=0) / N
""", 0.0, None),
    Bug("nll_grad_transposed_d_w", "nll_grad", _NLL_HEAD + """
    probas = softmax(X @ W + b, axis=1) - Y
    return probas.T @ X / N, probas.sum(axis=0) / N
""", 1.5, "transposed"),
    Bug("nll_grad_d_b_wrong_axis", "nll_grad", _NLL_HEAD + """
    probas = softmax(X @ W + b, axis=1) - Y
    return X.T @ probas / N, probas.sum(axis=1) / N
""", 1.5, "wrong axis"),
    Bug("nll_grad_right_only_at_w0", "nll_grad", _NLL_HEAD + """
    logits = np.zeros((N, 1)) + b          # forgot X @ W
    probas = softmax(logits, axis=1) - Y
    return X.T @ probas / N, probas.sum(axis=0) / N
""", 1.0, "right only at W = 0"),
    Bug("nll_grad_mutates_y", "nll_grad", _NLL_HEAD + """
    Y -= softmax(X @ W + b, axis=1)       # in place: the caller's Y changes
    return -X.T @ Y / N, -Y.sum(axis=0) / N
""", 2.5, "modified its input Y"),
    Bug("nll_grad_outputs_swapped", "nll_grad", _NLL_HEAD + """
    probas = softmax(X @ W + b, axis=1) - Y
    return probas.sum(axis=0) / N, X.T @ probas / N
""", 0.5, "outputs swapped"),
    Bug("nll_grad_softmax_wrong_axis", "nll_grad", _NLL_HEAD + """
    probas = softmax(X @ W + b, axis=0) - Y
    return X.T @ probas / N, probas.sum(axis=0) / N
""", 0.0, None),
    # -------------------------------------------------------------------- step
    Bug("step_gradient_ascent", "LogisticRegression.step", _logreg(_STEP_HEAD + """
        for p in self.params:
            self.params[p] = self.params[p] + self.learning_rate * grads[p]
        return loss
"""), 0.75, "sign flipped"),
    Bug("step_loss_after_update", "LogisticRegression.step", _logreg(_STEP_HEAD + """
        for p in self.params:
            self.params[p] = self.params[p] - self.learning_rate * grads[p]
        return self.loss(X, Y)
"""), 1.5, "after the update instead of before"),
    Bug("step_default_learning_rate", "LogisticRegression.step", _logreg(_STEP_HEAD + """
        for p in self.params:
            self.params[p] = self.params[p] - 1e-2 * grads[p]
        return loss
"""), 0.75, "used 1e-2"),
    Bug("step_no_learning_rate", "LogisticRegression.step", _logreg(_STEP_HEAD + """
        for p in self.params:
            self.params[p] = self.params[p] - grads[p]
        return loss
"""), 0.75, "learning rate ignored"),
    Bug("step_b_not_updated", "LogisticRegression.step", _logreg(_STEP_HEAD + """
        self.params['W'] = self.params['W'] - self.learning_rate * grads['W']
        return loss
"""), 1.5, "b was not updated"),
    Bug("step_no_return", "LogisticRegression.step", _logreg(_STEP_HEAD + """
        for p in self.params:
            self.params[p] = self.params[p] - self.learning_rate * grads[p]
"""), 1.5, "None"),
    Bug("step_in_place_update", "LogisticRegression.step", _logreg(_STEP_HEAD + """
        for p in self.params:
            self.params[p] -= self.learning_rate * grads[p]     # in place is fine
        return loss
"""), 2.0, None),
    Bug("step_summed_loss", "LogisticRegression.step", _logreg(_STEP_HEAD + """
        for p in self.params:
            self.params[p] = self.params[p] - self.learning_rate * grads[p]
        return loss * X.shape[0]
"""), 1.5, "missing 1/N"),
    Bug("step_modifies_x", "LogisticRegression.step", _logreg("""
    def step(self, X, Y):
        loss = self.loss(X, Y)
        grads = {}
        d_logits, _ = self.cross_entropy.backward()
        _, grads['W'], grads['b'] = self.affine.backward(d_logits)
        X -= X.mean(axis=0)          # "centre the batch for next time": the caller's X changes
        for p in self.params:
            self.params[p] = self.params[p] - self.learning_rate * grads[p]
        return loss
"""), 1.75, "modified its input X"),
]
