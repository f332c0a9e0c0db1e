"""Library shared by the pipeline stages and by serving.

Submodules are imported explicitly by their users (no re-exports here) so that each DVC
stage depends only on the modules it really uses.
"""
