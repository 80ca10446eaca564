"""Optimizers beyond Keras' own."""

from __future__ import annotations

import keras


class ScaledRateAdamW(keras.optimizers.AdamW):
    """AdamW whose rate is multiplied by ``scale`` for the variables in ``slow`` (the encoder
    in stage 2). Adam is invariant to gradient scale, so the rate itself must change."""

    def __init__(self, *args, slow=(), scale: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self._slow_vars, self._scale = list(slow), scale
        self._slow_index: set[int] = set()

    def build(self, variables):
        super().build(variables)
        keys = {self._var_key(v) for v in self._slow_vars}
        self._slow_index = {i for i, v in enumerate(variables) if self._var_key(v) in keys}

    def update_step(self, gradient, variable, learning_rate):
        if self._get_variable_index(variable) in self._slow_index:
            learning_rate = learning_rate * self._scale
        return super().update_step(gradient, variable, learning_rate)
