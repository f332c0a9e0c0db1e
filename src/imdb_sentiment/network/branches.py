"""The two branches of a network with a linear branch, each alone (the ablation evaluate
reports): the LSTM's P(positive), and the linear branch's, read from the saved network."""

from __future__ import annotations

import keras

STUDENT_LAYER = "lstm"  # the LSTM network, nested whole
LINEAR_LAYER = "linear"  # the linear branch's logit
BLEND_LAYER = "blend"


def has_linear_branch(classifier: keras.Model) -> bool:
    return any(layer.name == BLEND_LAYER for layer in classifier.layers)


def linear_logit(classifier: keras.Model) -> keras.Model:
    """ids -> the linear branch's logit, sharing the network's layers."""
    return keras.Model(classifier.inputs, classifier.get_layer(LINEAR_LAYER).output)


def branches_alone(classifier: keras.Model) -> dict[str, keras.Model]:
    """{"lstm": ids -> P(positive), "linear": ids -> P(positive)} of a network with a linear
    branch; {} for one without."""
    if not has_linear_branch(classifier):
        return {}
    logit = classifier.get_layer(LINEAR_LAYER).output
    linear = keras.Model(classifier.inputs, keras.layers.Activation("sigmoid")(logit))
    return {STUDENT_LAYER: classifier.get_layer(STUDENT_LAYER), "linear": linear}
