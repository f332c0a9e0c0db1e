"""Names vulture cannot see used, each reviewed: frameworks call them, or Python's protocols
need them. Not a place for code that only tests call; that code is removed instead.

Checked by `.ci/run`: vulture src stages bench .ci/vulture_whitelist.py --exclude bench/runs
"""
# ruff: noqa: B018, F821

# Keras calls these on layers and callbacks, and reads these attributes.
_.supports_masking  # layers.MaskedPooling1D
_.compute_mask  # layers.MaskedPooling1D
_.compute_output_shape  # layers.MaskedPooling1D, text.TextEncoder
_.on_train_end  # live.EpochLogger (DVCLive's Keras callback)
_.use_cudnn  # distribute: set on LSTM layers for a GPU
_._update_model_variables_moving_average  # rowwise_adam: Keras' optimizer calls it (issue 35)
_._maybe_symbolic_build  # multi_worker_fit: Keras' fit calls it under a strategy (issue 35)
data_batch  # multi_worker_fit: the signature Keras calls _maybe_symbolic_build with
iterator  # multi_worker_fit: the same

# pydantic reads it from a model class.
model_config  # schema.Section
# Read by name (getattr) through fitting.LINEAR_NGRAM_KEYS, as the n-gram keys of NGRAM_KEYS.
_.linear_branch_pairs  # schema.StudentParams
_.linear_branch_triples  # schema.StudentParams

# TensorFlow reads it from tf.data options.
_.auto_shard_policy  # model.BucketedBatches.as_dataset

# scikit-learn calls it in a Pipeline.
_.transform  # linear.LogCountRatio

# FastAPI calls the route and error handlers it registers; uvicorn the app factory.
server_ready  # open_inference
model_metadata  # open_inference
model_ready  # open_inference
infer  # open_inference
validation_error  # serve
http_error  # serve
health  # serve
predict_batch  # serve
app_from_environment  # serve: `uvicorn --factory imdb_sentiment.serving.serve:app_from_environment`
warning  # serve: a response model's field, filled by pydantic

# Signatures Python fixes: a signal handler's, a context manager's __exit__.
signum  # params
exc_info  # predict.FairLock.__exit__

# Attributes a library reads: tqdm's class-wide redraw thread setting (bench/mutation.py).
monitor_interval  # tqdm.tqdm
