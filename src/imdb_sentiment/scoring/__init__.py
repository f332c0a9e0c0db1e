"""Fast scoring and its figures, used by training (the teachers' soft labels, calibration),
evaluation and serving: the compiled LSTM kernel, Keras' path, metrics and plots."""
