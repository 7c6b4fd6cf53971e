"""Vector indexes: the protocol, the embedded SQLite + NumPy index, Amazon S3 Vectors, filters and limits."""
