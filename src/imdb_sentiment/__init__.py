"""Library shared by the pipeline stages and by serving.

Submodules are imported explicitly by their users (no re-exports here) so that each DVC
stage depends only on the modules it really uses.

Importing the package quiets TensorFlow's C++ INFO and WARNING lines (``cpu_feature_guard``
and the like) unless the user has set ``TF_CPP_MIN_LOG_LEVEL``: TensorFlow reads it once, when
it loads, so modules that import TensorFlow themselves import this package first. The lines
that remain are named in the README's troubleshooting.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
