"""The trained model's form, below training and serving alike: the layers a saved file is made
of, the .keras file and the architecture description inside it, and the model card."""
