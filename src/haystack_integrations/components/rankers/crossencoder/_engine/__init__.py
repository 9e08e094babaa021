"""The cross-encoder's inference engine (private: import the components from the package above).

Pair encoding and passage selection, batching, scoring with PyTorch, ONNX Runtime or OpenVINO (cross- and
bi-encoders), the score heads, precision, activations and aggregation, the pair-score cache, and model loading.
Its layout may change between releases; the names users need are exported by
`haystack_integrations.components.rankers.crossencoder`.
"""
