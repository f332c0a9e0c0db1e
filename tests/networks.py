"""Networks the tests build beside the pipeline's own: an average of classifiers, and the
views of a network by its description."""

from __future__ import annotations

import keras

from imdb_sentiment.network import model_file


def average_of(members: list[keras.Model]) -> keras.Model:
    """One id-sequence network whose output is the mean of the members' P(positive)."""
    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    mean = keras.layers.Average(name="positive")([member(ids) for member in members])
    return keras.Model(ids, mean, name="lstm_ensemble")


def views_of(network: keras.Model) -> model_file.Views | None:
    """[(None, words branch), (n-gram layer, its branch), ...] of a one-member multi-view
    network (or of the LSTM network beside a linear branch); None for a network without n-gram
    views or with other nestings."""
    described = model_file.network_description(network)
    if described is None or len(described["members"]) != 1:
        return None
    if described.get("blend"):
        network = network.get_layer(described["blend"])
    member = described["members"][0]
    if [view["ngrams"] for view in member["views"]] == [None]:
        return None
    return model_file.resolve_views(network, member)
