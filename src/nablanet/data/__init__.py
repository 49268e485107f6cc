"""Data: the IDX reader, the data sets (bundled MNIST, Fashion-MNIST) and pictures of digits."""
