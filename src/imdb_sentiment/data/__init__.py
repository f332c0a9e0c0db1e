"""Reviews in: the archive or your tables, text cleaning and the vocabulary, encoded arrays,
word n-grams. Imports nothing above it."""
