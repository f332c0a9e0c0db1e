"""A classifier's saved form: the ``.keras`` file with bytes that depend on the model alone,
and the description of its architecture stored inside it, which the serving kernel runs from.

Below training and serving alike: training saves with it, scoring and serving read it.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path

import keras

from imdb_sentiment.data.ngrams import WordNgrams
from imdb_sentiment.network.branches import STUDENT_LAYER, has_linear_branch
from imdb_sentiment.network.layers import MaskedPooling1D

POOLINGS = ("last", "max", "mean_max")  # how a classifier pools its LSTM's outputs

ARCHITECTURE_ENTRY = "architecture.json"  # the description, saved inside the .keras zip
Views = list[tuple[WordNgrams | None, keras.Model]]


def network_description(classifier: keras.Model) -> dict | None:
    """The classifier's shape as plain data: its members (itself, or each network of a Keras
    ``Average`` of networks), each member's views
    (:func:`~imdb_sentiment.training.model.build_multi_view`: words, then one branch per n-gram
    layer) by layer name, and each view's sizes and pooling; None for any
    other nesting. A network with a linear branch is described by its LSTM network, with
    ``"blend"`` naming that network's layer.

    Read from ``get_config()``, the public form in which Keras saves a functional model, not
    from Keras' private graph. :func:`save_model` stores it beside the weights, and the
    serving kernel runs a loaded model from the stored copy.
    """
    if has_linear_branch(classifier):  # the LSTM network's description, and where it sits
        inner = network_description(classifier.get_layer(STUDENT_LAYER))
        return None if inner is None else {**inner, "blend": STUDENT_LAYER}
    members = _member_names(classifier)
    if members is None:
        return None
    described = []
    for name in members:
        member = classifier if name is None else classifier.get_layer(name)
        views = _view_names(member)
        if views is None:
            return None
        described.append({"member": name, "views": [_describe_view(member, *v) for v in views]})
    return {"members": described}


def resolve_views(classifier: keras.Model, member: dict) -> Views:
    """One described member's views as layers: [(None, words branch), (n-gram layer, its
    branch), ...]; a single classifier is its own words branch. KeyError/ValueError if the
    description names a layer the model lacks, or one of another kind."""
    model = classifier if member["member"] is None else classifier.get_layer(member["member"])
    views = []
    for view in member["views"]:
        branch = model if view["branch"] is None else model.get_layer(view["branch"])
        ngrams = None if view["ngrams"] is None else model.get_layer(view["ngrams"])
        if not isinstance(branch, keras.Model) or not isinstance(ngrams, WordNgrams | None):
            raise ValueError(f"the description's view {view} does not match the model")
        views.append((ngrams, branch))
    return views


def branch_pooling(branch: keras.Model) -> str | None:
    """The pooling of a :func:`~imdb_sentiment.training.model.build_classifier` network (one
    of :data:`POOLINGS`), or None if its layers pool some other way."""
    modes = tuple(layer.mode for layer in branch.layers if isinstance(layer, MaskedPooling1D))
    lstms = [layer for layer in branch.layers if isinstance(layer, keras.layers.RNN)]
    if not lstms or not lstms[-1].return_sequences:
        return "last" if not modes else None
    return {("max",): "max", ("max", "mean"): "mean_max"}.get(modes)


def _describe_view(member: keras.Model, branch_name: str | None, ngrams_name: str | None) -> dict:
    branch = member if branch_name is None else member.get_layer(branch_name)
    ngrams = None if ngrams_name is None else member.get_layer(ngrams_name)
    embeddings = [layer for layer in branch.layers if isinstance(layer, keras.layers.Embedding)]
    lstms = [layer for layer in branch.layers if isinstance(layer, keras.layers.LSTM)]
    return {
        "branch": branch_name,
        "ngrams": ngrams_name,
        "n": ngrams.n if ngrams else 1,
        "embedding_rows": embeddings[0].input_dim if embeddings else None,
        "lstm_units": lstms[0].units if lstms else None,
        "lstm_layers": len(lstms),
        "pooling": branch_pooling(branch),
    }


def _member_names(classifier: keras.Model) -> list[str | None] | None:
    """[None] for a single classifier, the member names of an average, else None."""
    layers = classifier.layers
    nested = [layer for layer in layers if isinstance(layer, keras.Model)]
    if not nested or _view_names(classifier) is not None:
        return [None]
    fed_by = _fed_by(classifier)
    inputs = [layer for layer in layers if isinstance(layer, keras.layers.InputLayer)]
    averaged = isinstance(layers[-1], keras.layers.Average)
    if not averaged or len(layers) != len(inputs) + len(nested) + 1 or len(inputs) != 1:
        return None
    if any(fed_by.get(layer.name) != inputs[0].name for layer in nested):
        return None
    return [layer.name for layer in nested]


def _view_names(member: keras.Model) -> list[tuple[str | None, str | None]] | None:
    """[(branch, n-gram layer)] by name: [(None, None)] for a classifier with no nested
    model; the words branch then one per n-gram layer for
    :func:`~imdb_sentiment.training.model.build_multi_view`'s model; None otherwise."""
    layers = member.layers
    nested = [layer for layer in layers if isinstance(layer, keras.Model)]
    if not nested:
        return [(None, None)]
    ngrams = [layer for layer in layers if isinstance(layer, WordNgrams)]
    if not ngrams or len(nested) != len(ngrams) + 1 or len(layers) != 2 * len(nested) + 1:
        return None
    if not isinstance(layers[-1], keras.layers.Average):
        return None
    fed_by = _fed_by(member)
    source = layers[0].name
    branch_of = {fed_by.get(branch.name): branch.name for branch in nested}
    names = [(branch_of.get(source), None)] + [(branch_of.get(g.name), g.name) for g in ngrams]
    if any(branch is None for branch, _ in names) or len(branch_of) != len(nested):
        return None
    if any(fed_by.get(layer.name) != source for layer in ngrams):
        return None
    return names


def _fed_by(model: keras.Model) -> dict[str, str | None]:
    """Each layer's name -> the name of the one layer whose output it was called on (None
    for several or none), read from the functional config's ``inbound_nodes``."""
    sources = {}
    for layer in model.get_config().get("layers", []):
        nodes = layer.get("inbound_nodes") or []
        parents = _history_names(nodes[0]) if len(nodes) == 1 else []
        sources[layer["name"]] = parents[0] if len(parents) == 1 else None
    return sources


def _history_names(node: object) -> list[str]:
    """The layer names in every ``keras_history`` of one serialised call."""
    if isinstance(node, dict):
        if "keras_history" in node:
            return [node["keras_history"][0]]
        return [name for value in node.values() for name in _history_names(value)]
    if isinstance(node, list | tuple):
        return [name for value in node for name in _history_names(value)]
    return []


def load_model(path: Path) -> keras.Model:
    """Load a saved model with Keras' safe mode (no arbitrary code from the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model not found; run `dvc repro` first")
    return keras.saving.load_model(path, safe_mode=True)


ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def save_model(model: keras.Model, path: Path, architecture: dict | None = None) -> None:
    """``model.save(path)``, with bytes that depend on the model alone, and ``architecture``
    (:func:`network_description` of its classifier) stored in the same zip.

    Keras stamps the archive with the save time (``date_saved`` in metadata.json, and each zip
    entry's time), so the same weights would give a new file, a new DVC cache entry and a new
    sha256 on every retrain. Here the stamp is the fixed zip epoch; the Keras version stays.
    Keras' loader reads only its own entries, so the description travels with the file.
    """
    path = Path(path)
    model.save(path)
    with zipfile.ZipFile(path) as saved:
        entries = [(info.filename, info, saved.read(info)) for info in saved.infolist()]
    if architecture is not None:
        description = json.dumps(architecture, indent=1, sort_keys=True).encode()
        entries.append((ARCHITECTURE_ENTRY, entries[0][1], description))
    scratch = path.with_name(f".{path.name}.normalising")
    with zipfile.ZipFile(scratch, "w") as normalised:
        for name, info, data in entries:
            if name == "metadata.json":
                metadata = json.loads(data)
                metadata["date_saved"] = "1980-01-01@00:00:00"
                data = json.dumps(metadata).encode()
            elif name == "config.json":
                data = _renumber_shared_objects(data.decode()).encode()
            stamped = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            stamped.compress_type, stamped.external_attr = info.compress_type, info.external_attr
            normalised.writestr(stamped, data)
    os.replace(scratch, path)


def saved_architecture(archive: zipfile.ZipFile) -> dict | None:
    """The description :func:`save_model` stored in a .keras zip, or None if it has none
    (a file saved by Keras itself, or before descriptions were saved)."""
    if ARCHITECTURE_ENTRY not in archive.namelist():
        return None
    try:
        described = json.loads(archive.read(ARCHITECTURE_ENTRY))
    except ValueError as error:
        raise ValueError(f"{ARCHITECTURE_ENTRY} is not JSON: {error}") from error
    if not isinstance(described, dict) or not isinstance(described.get("members"), list):
        raise ValueError(f"{ARCHITECTURE_ENTRY} has no list of members")
    return described


_SHARED_OBJECT_ID = re.compile(r'"shared_object_id": (\d+)')


def _renumber_shared_objects(config: str) -> str:
    """Keras names objects shared between layers by their memory address; number them in
    order of appearance instead (the same objects keep the same number, so loading is alike)."""
    numbers: dict[str, int] = {}

    def number(match: re.Match) -> str:
        return f'"shared_object_id": {numbers.setdefault(match.group(1), len(numbers))}'

    return _SHARED_OBJECT_ID.sub(number, config)
