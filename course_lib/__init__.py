"""Reference code for the course "Why Transformers normalize with LayerNorm".

Import what a chapter needs from the submodules:

* :mod:`course_lib.functional` - ``layer_norm``, ``rms_norm``, ``batch_norm``,
  ``dynamic_tanh``, ``attention_weights``, ``scaled_dot_product_attention``,
  ``padding_mask``;
* :mod:`course_lib.autograd` - the hand-derived backward: ``layer_norm_backward``
  (the readable reference), ``layer_norm_backward_blocked`` and
  ``LayerNormFunction``;
* :mod:`course_lib.norms` - ``LayerNorm``, ``RMSNorm``, ``BatchNorm``,
  ``DynamicTanh``, and ``make_norm`` for the names in ``NORMS``;
* :mod:`course_lib.transformer` - ``MultiHeadAttention``, ``BlockConfig``,
  ``TransformerBlock``, ``TransformerStack``;
* :mod:`course_lib.data` - the notes' worked examples;
* :mod:`course_lib.notebook` - ``setup()``;
* :mod:`course_lib.plotting`, :mod:`course_lib.widgets`,
  :mod:`course_lib.experiments`.
"""

__version__ = "0.1.0"
