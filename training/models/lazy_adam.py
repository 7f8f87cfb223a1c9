"""Adam whose embedding-table updates touch only the rows of the batch ("lazy" Adam).

Keras 3's Adam updates a variable densely even when its gradient is sparse
(``tf.IndexedSlices``, which embedding lookups produce): every step rewrites the whole
user and item tables and their two moment tables. With MovieLens-25M's 162k users and
62k items that is ~20M parameters per step for a batch that touches a few thousand
rows, and it was most of the two-tower training time (profiled at 1M interactions: a
train step cost 25 times its forward pass). :class:`LazyAdam` applies Adam's update to
the rows present in the gradient only, as TensorFlow Addons' ``LazyAdam`` and the
TensorFlow Recommenders guides do for embeddings; dense gradients get plain Adam.

The difference from dense Adam: a row's moments and weights change only in steps that
use the row (dense Adam keeps moving a row by its decaying momentum after its last
gradient). :class:`training.models.towers.TwoTowerConfig` (``optimizer="auto"``) uses it
only for large id tables: on ml-latest-small it scored a little lower on validation and
saved nothing (docs/bench/training_scale.md).
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras


@keras.saving.register_keras_serializable(package="hybridrec")
class LazyAdam(keras.optimizers.Adam):
    """Adam with sparse (row-wise) updates for ``tf.IndexedSlices`` gradients."""

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        import tensorflow as tf

        if not isinstance(gradient, tf.IndexedSlices) or self.amsgrad:
            super().update_step(gradient, variable, learning_rate)
            return
        dtype = variable.dtype
        # One row per distinct index. A row used twice in a batch sums its gradients for
        # the first moment and their squares for the second, as Keras' Adam does with the
        # same IndexedSlices (it squares the slices before densifying them).
        rows, position = tf.unique(gradient.indices)
        values = tf.cast(gradient.values, dtype)
        n_rows = tf.shape(rows)[0]
        grad = tf.math.unsorted_segment_sum(values, position, n_rows)
        grad_sq = tf.math.unsorted_segment_sum(tf.square(values), position, n_rows)
        lr = tf.cast(learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        index = self._get_variable_index(variable)
        m, v = self._momentums[index].value, self._velocities[index].value
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * grad
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * grad_sq
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        delta = alpha * m_rows / (tf.sqrt(v_rows) + tf.cast(self.epsilon, dtype))
        var = variable.value if isinstance(variable, keras.Variable) else variable
        var.scatter_sub(tf.IndexedSlices(delta, rows))
